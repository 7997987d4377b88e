"""`palisade migrate --to postgres://... --storage s3://...` (issue 14): an embedded instance
(SQLite and a folder) copied into the cluster layout serves every page and file as it did, keeps
its accounts, tokens and history, and a non-empty target is refused.

Needs PostgreSQL and the S3 server: runs in the cluster layout (PALISADE_E2E_LAYOUT=cluster)."""

from __future__ import annotations

import pytest

from distbuilder import SdistBuilder, WheelBuilder
from support import DROPPER_SETUP, LAYOUT, Server, fresh_bucket_env, fresh_database, installed_versions

pytestmark = pytest.mark.skipif(LAYOUT != "cluster", reason="migrating into PostgreSQL needs the cluster layout (PALISADE_E2E_LAYOUT=cluster)")



def snapshot(srv: Server, projects: list[str]) -> dict[str, object]:
    """Every page and file a client can fetch, with the server's own address taken out."""
    out: dict[str, object] = {}
    pages = ["/simple/"] + [f"/simple/{p}/" for p in projects] + [f"/pypi/{p}/json" for p in projects]
    for path in pages:
        for accept in ("text/html", "application/vnd.pypi.simple.v1+json", "application/json"):
            r = srv.get(path, headers={"Accept": accept})
            out[f"{path} {accept}"] = (r.status_code, r.headers.get("X-PyPI-Last-Serial"), r.text.replace(srv.url, "<base>"))
    for p in projects:
        for name, f in srv.project_files(p).items():
            out[f"file {name}"] = srv.download(f)
    return out


def settled_checkpoint(srv: Server) -> str:
    """The newest checkpoint once it covers every entry: `palisade log audit` signs for what is
    pending, then checks the log against the database and the files."""
    audit = srv.cli("log", "audit", check=False)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    return srv.get("/log/checkpoint").text


def test_an_embedded_instance_migrates_into_postgres_and_a_bucket(palisade_bin, tmp_path, clients):
    old = Server(palisade_bin, tmp_path / "embedded", "embedded", layout="embedded").start()
    old.create_user("mover")
    old.create_user("other-owner")
    token = old.create_token("mover")
    d = tmp_path / "dists"
    built = [
        SdistBuilder("moved-a", "1.0").build(d),
        WheelBuilder("moved-a", "1.0").build(d),
        WheelBuilder("moved-a", "2.0").build(d),
        WheelBuilder("moved-b", "0.1", requires_dist=["moved-a>=1"]).build(d),
    ]
    clients.twine_upload(old, token, *built)
    held = SdistBuilder("moved-held", "1.0", extra_files={"moved_held-1.0/setup.py": DROPPER_SETUP.encode()}).build(d)
    r = old.upload_raw(token, held.name, held.read_bytes(), name="moved-held", version="1.0")
    assert r.status_code in (200, 400), r.text
    old.cli("yank", "moved-a", "2.0", "--reason", "broken")
    old.cli("role", "add", "moved-b", "other-owner", "--role", "maintainer")
    projects = ["moved-a", "moved-b"]
    log_before = settled_checkpoint(old)
    before = snapshot(old, projects)
    audit_before = old.cli("audit", "--json", "--limit", "1000").stdout
    old.stop()

    database = fresh_database()
    storage = fresh_bucket_env()
    migrate = old.cli("migrate", "--to", database, "--storage", storage["PALISADE_STORAGE_URL"], timeout=300,
                      env_extra={k: v for k, v in storage.items() if k.startswith("AWS_")})
    assert "every sha256 checked" in migrate.stderr, migrate.stderr

    # The transparency log's signing key lives outside the database: the new nodes are given it.
    key = (old.data_dir / "log-signing.key").read_text().strip()
    new = Server(palisade_bin, tmp_path / "cluster", "migrated",
                 {"PALISADE_DATABASE_URL": database, **storage, "PALISADE_TRANSPARENCY_KEY": key}).start()
    new.accounts = old.accounts
    try:
        after = snapshot(new, projects)
        assert after.keys() == before.keys()
        for key in before:
            assert after[key] == before[key], key
        assert new.cli("audit", "--json", "--limit", "1000").stdout == audit_before
        # The log came along: the same signed checkpoint, and it agrees with the copied files.
        assert new.get("/log/checkpoint").text == log_before
        assert "agrees" in new.cli("log", "audit").stderr
        # Accounts, second factors and tokens came along: the old token uploads, the old password
        # and TOTP secret log in, pip installs.
        more = WheelBuilder("moved-b", "0.2", requires_dist=["moved-a>=1"]).build(tmp_path / "more")
        clients.twine_upload(new, token, more)
        r = new.api("POST", "/api/login", json={"login": "mover", "password": old.accounts["mover"]["password"]})
        assert r.status_code == 200 and r.json().get("second_factor_required"), r.text  # the TOTP factor came along
        r = new.api("GET", "/api/account/tokens", old.accounts["mover"]["session"])
        assert r.status_code == 200, r.text  # and the session made on the old instance still works
        target = tmp_path / "target"
        clients.pip_install(new, "moved-b==0.2", target=target)
        assert installed_versions(target)["moved-a"] == "1.0"  # 2.0 is yanked
        # Nothing of the files stays on the node.
        assert not (new.data_dir / "files").exists() and new.tmp_entries() == []
        assert len(new.blob_files()) == len(new.all_listed_files()) + len([f for f in [held] if r.status_code == 200])
    finally:
        new.stop()

    # A target that holds anything is refused, and left as it was.
    again = old.cli("migrate", "--to", database, check=False, timeout=120)
    assert again.returncode == 1 and "not empty" in again.stderr, again

    # The copy has an instance id of its own: the bucket now names it, and the old instance, if
    # pointed at the bucket (by mistake), is refused rather than sweeping the copy's files.
    stray = old.cli("user", "list", check=False, env_extra={"PALISADE_STORAGE_URL": storage["PALISADE_STORAGE_URL"],
                                                        **{k: v for k, v in storage.items() if k.startswith("AWS_")}})
    assert stray.returncode == 1 and "belongs to another Palisade database" in stray.stderr, stray
    # On its own folder it still starts, to go back to.
    old.start()
    assert old.project_files("moved-a")
    old.stop()
