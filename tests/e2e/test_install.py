"""Installing from Palisade with real pip and uv: plain installs, `--require-hashes`,
dependency resolution from PEP 658 `.metadata` files, and yanked versions."""

from __future__ import annotations

import hashlib
import json
import sys
from urllib.parse import urlparse

import pytest

from distbuilder import WheelBuilder, file_sha256
from support import eventually, installed_versions, request_lines

INSTALLERS = ["pip", "uv"]


@pytest.fixture(scope="module")
def dists(server, module_clients, tmp_path_factory):
    d = tmp_path_factory.mktemp("install-dists")
    server.create_user("installer")
    token = server.create_token("installer")
    built = {
        "hello1": WheelBuilder("hello-e2e", "1.0").build(d),
        "hello2": WheelBuilder("hello-e2e", "2.0").build(d),
        "depapp": WheelBuilder("depapp", "1.0", requires_dist=["manyver<1.3"]).build(d),
        "yanky1": WheelBuilder("yanky", "1.0").build(d),
        "yanky2": WheelBuilder("yanky", "1.1").build(d),
    }
    for i in range(6):
        built[f"manyver{i}"] = WheelBuilder("manyver", f"1.{i}").build(d)
    module_clients.twine_upload(server, token, *built.values())
    server.cli("yank", "yanky", "1.1", "--reason", "do not use")

    def yanked():
        f = server.project_files("yanky")[built["yanky2"].name]
        assert f.get("yanked") == "do not use", f
        assert server.project_files("yanky")[built["yanky1"].name].get("yanked", False) is False

    eventually(yanked)
    return built


def install(clients, server, installer, *reqs, target, extra=(), check=True):
    fn = clients.pip_install if installer == "pip" else clients.uv_install
    return fn(server, *reqs, target=target, extra=list(extra), check=check)


@pytest.mark.parametrize("installer", INSTALLERS)
def test_install_latest(server, clients, dists, tmp_path, installer):
    target = tmp_path / "target"
    install(clients, server, installer, "hello-e2e", target=target)
    init = target / "hello_e2e" / "__init__.py"
    assert init.is_file(), f"module not installed; target has {sorted(p.name for p in target.iterdir())}"
    assert 'VERSION = "2.0"' in init.read_text()
    assert installed_versions(target)["hello-e2e"] == "2.0"


@pytest.mark.parametrize("installer", INSTALLERS)
def test_install_pinned_with_require_hashes(server, clients, dists, tmp_path, installer):
    wheel = dists["hello1"]
    req = tmp_path / "requirements.txt"
    req.write_text(f"hello-e2e==1.0 --hash=sha256:{file_sha256(wheel)}\n")
    target = tmp_path / "target"
    install(clients, server, installer, target=target, extra=["--require-hashes", "-r", str(req)])
    assert 'VERSION = "1.0"' in (target / "hello_e2e" / "__init__.py").read_text()


@pytest.mark.parametrize("installer", INSTALLERS)
def test_require_hashes_rejects_wrong_hash(server, clients, dists, tmp_path, installer):
    req = tmp_path / "requirements.txt"
    req.write_text(f"hello-e2e==1.0 --hash=sha256:{hashlib.sha256(b'nope').hexdigest()}\n")
    target = tmp_path / "target"
    proc = install(clients, server, installer, target=target, extra=["--require-hashes", "-r", str(req)],
                   check=False)
    assert proc.returncode != 0, clients.describe(proc)
    assert not (target / "hello_e2e").exists()


@pytest.mark.parametrize("installer", INSTALLERS)
def test_dependencies_resolved(server, clients, dists, tmp_path, installer):
    target = tmp_path / "target"
    install(clients, server, installer, "depapp", target=target)
    versions = installed_versions(target)
    assert versions.get("depapp") == "1.0"
    assert versions.get("manyver") == "1.2", versions
    assert (target / "manyver" / "__init__.py").is_file()


def _paths(server, project):
    out = {}
    for name, f in server.project_files(project).items():
        out[name] = urlparse(server.file_url(f, server.url + f"/simple/{project}/")).path
    return out


def test_pip_resolves_from_pep658_metadata(server, clients, dists, tmp_path):
    """`pip install --dry-run --report` needs only metadata: with PEP 658 it must fetch the
    `.metadata` files and not a single wheel."""
    offset = server.log_size()
    report = tmp_path / "report.json"
    clients.pip_install(server, "depapp", target=tmp_path / "target",
                        extra=["--dry-run", "--report", str(report), "--quiet"])
    items = {i["metadata"]["name"]: i["metadata"]["version"] for i in json.loads(report.read_text())["install"]}
    assert items == {"depapp": "1.0", "manyver": "1.2"}, items
    _assert_metadata_only(server, offset, {"depapp": dists["depapp"].name, "manyver": dists["manyver2"].name})


def test_uv_resolves_from_pep658_metadata(server, clients, dists, tmp_path):
    offset = server.log_size()
    req_in = tmp_path / "requirements.in"
    req_in.write_text("depapp\n")
    proc = clients.uv_pip("compile", "--index-url", server.index_url, "--python", sys.executable,
                          "--no-config", "--no-header", "--quiet", str(req_in))
    assert "depapp==1.0" in proc.stdout and "manyver==1.2" in proc.stdout, clients.describe(proc)
    _assert_metadata_only(server, offset, {"depapp": dists["depapp"].name, "manyver": dists["manyver2"].name})


def _assert_metadata_only(server, offset, wheels: dict[str, str]):
    def check():
        log = server.log_text(offset)
        for project, filename in wheels.items():
            path = _paths(server, project)[filename]
            assert request_lines(log, "GET", path + ".metadata"), (
                f"no GET {path}.metadata in the server log; the log since the install:\n{log[-6000:]}"
            )
        for project in wheels:
            for filename, path in _paths(server, project).items():
                assert not request_lines(log, "GET", path), f"{filename} itself was downloaded during resolution"

    eventually(check, timeout=2)


@pytest.mark.parametrize("installer", INSTALLERS)
def test_yanked_version_skipped_unless_pinned(server, clients, dists, tmp_path, installer):
    target = tmp_path / "latest"
    install(clients, server, installer, "yanky", target=target)
    assert installed_versions(target)["yanky"] == "1.0", "a yanked release must not be picked for `yanky`"

    target = tmp_path / "ranged"
    install(clients, server, installer, "yanky>=1.0", target=target)
    assert installed_versions(target)["yanky"] == "1.0", "a yanked release must not be picked for `yanky>=1.0`"

    target = tmp_path / "pinned"
    install(clients, server, installer, "yanky==1.1", target=target)
    assert installed_versions(target)["yanky"] == "1.1", "an exact pin may install a yanked release"
