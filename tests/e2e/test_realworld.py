"""Real distributions from PyPI (shared/fixtures/pep740): they upload with twine, are listed
with the right hashes and their wheels install with pip and uv (`--no-deps`)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from support import installed_versions

FIXTURES = Path(os.environ.get("PALISADE_FIXTURES", Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "pep740"))
if not FIXTURES.is_dir():
    FIXTURES = Path("/work/shared/fixtures/pep740")


def _dists() -> list[Path]:
    return sorted(p for p in FIXTURES.iterdir() if p.name.endswith((".whl", ".tar.gz")))


def _name_version(filename: str) -> tuple[str, str]:
    stem = filename[: -len(".tar.gz")] if filename.endswith(".tar.gz") else filename[: -len(".whl")]
    name, version = stem.split("-")[:2]
    return name.replace("_", "-").lower(), version


@pytest.fixture(scope="module")
def uploaded(server, module_clients, tmp_path_factory):
    dists = _dists()
    assert len(dists) >= 6, f"expected the real-world fixtures in {FIXTURES}, found {dists}"
    d = tmp_path_factory.mktemp("realworld")
    copies = []
    for p in dists:
        shutil.copyfile(p, d / p.name)  # the fixture dir is read-only
        copies.append(d / p.name)
    server.create_user("realworld")
    token = server.create_token("realworld")
    proc = module_clients.twine_upload(server, token, *copies)
    return copies, proc


def test_all_real_world_files_upload(server, uploaded):
    copies, _proc = uploaded
    listed = server.all_listed_files()
    for p in copies:
        assert p.name in listed, f"{p.name} is not in the index"
        f = listed[p.name]
        data = p.read_bytes()
        assert f["hashes"]["sha256"] == hashlib.sha256(data).hexdigest()
        assert f["size"] == len(data)
        assert server.download(f) == data
    assert len(listed) == len(copies)
    server.assert_no_debris()


def test_real_world_metadata_matches(server, uploaded):
    copies, _ = uploaded
    for p in copies:
        name, version = _name_version(p.name)
        r = server.get(f"/pypi/{name}/{version}/json")
        assert r.status_code == 200, f"/pypi/{name}/{version}/json -> {r.status_code}"
        info = r.json()["info"]
        assert info["version"] == version
        assert info["name"].replace("_", "-").replace(".", "-").lower() == name


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_real_world_wheels_install(server, clients, uploaded, tmp_path, installer):
    copies, _ = uploaded
    wheels = [p for p in copies if p.name.endswith(".whl")]
    assert wheels
    for w in wheels:
        name, version = _name_version(w.name)
        target = tmp_path / f"{installer}-{name}"
        fn = clients.pip_install if installer == "pip" else clients.uv_install
        fn(server, f"{name}=={version}", target=target, extra=["--no-deps"])
        assert installed_versions(target).get(name) == version, sorted(os.listdir(target))
        module = name.replace("-", "_")
        assert (target / module / "__init__.py").is_file()
