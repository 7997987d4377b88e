"""The transparency log end to end: every change to what is served becomes an entry, a
checkpoint covering it is signed within seconds, and an independent verifier, Go's own
`golang.org/x/mod/sumdb/tlog` and `note` (tests/e2e/tlog_oracle, built here with Debian's Go),
recomputes every checkpoint from the tiles Palisade serves and checks the signatures and the
proofs. Then Palisade's own client (`palisade log verify`) and auditor (`palisade log audit`)
against forged checkpoints, rewritten histories and tampered storage.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from distbuilder import WheelBuilder
from support import Server, eventually

HERE = Path(__file__).resolve().parent
SEQUENCE = {"PALISADE_TRANSPARENCY_SEQUENCE_MS": "200"}


@pytest.fixture(scope="module")
def oracle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("oracle") / "tlog_oracle"
    proc = subprocess.run([str(HERE / "tlog_oracle" / "build.sh"), str(out)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.skip(f"cannot build the Go oracle (needs Debian's golang-go and golang-golang-x-mod-dev):\n{proc.stderr}")
    return out


@pytest.fixture(scope="module")
def srv(palisade_bin, tmp_path_factory):
    s = Server(palisade_bin, tmp_path_factory.mktemp("srv-transparency"), "transparency", SEQUENCE)
    s.start()
    s.create_user("owner")
    s.owner_token = s.create_token("owner")
    yield s
    s.stop()


def checkpoint(srv: Server) -> SimpleNamespace:
    r = srv.get("/log/checkpoint")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    origin, size, root = r.text.split("\n")[:3]
    return SimpleNamespace(origin=origin, size=int(size), root=root, note=r.text)


def log_len(srv: Server) -> int:
    """How many entries the log has (its rows, checkpointed or not)."""
    import sqlite3

    with sqlite3.connect(srv.data_dir / "palisade.db") as db:
        return db.execute("SELECT COUNT(*) FROM log_entries").fetchone()[0]


def settled(srv: Server, at_least: int) -> SimpleNamespace:
    """The checkpoint once it covers at least `at_least` entries (the sequencer signs within
    moments)."""

    def covered():
        c = checkpoint(srv)
        assert c.size >= at_least, f"checkpoint at {c.size}, waiting for {at_least}"
        return c

    return eventually(covered, timeout=10)


def upload(srv: Server, project: str, version: str, tmp_path: Path):
    w = WheelBuilder(project, version).build(tmp_path)
    r = srv.upload_raw(srv.owner_token, w.name, w.read_bytes(), name=project, version=version)
    assert r.status_code == 200, f"{r.status_code} {r.text}"
    return w, r


def run_oracle(oracle: Path, srv: Server, vkey: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(oracle), "-url", f"{srv.url}/log", "-vkey", vkey, *extra], capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, f"the Go verifier refused the log:\n{proc.stdout}\n{proc.stderr}"
    return proc


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_go_verifier_refuses_forgeries_in_its_self_test(oracle):
    """The oracle itself is checked: against a log Go builds, it passes the honest one and fails
    changed entries, changed tiles, other keys and rewritten histories (selftest/main.go)."""
    proc = subprocess.run([str(HERE / "tlog_oracle" / "build.sh"), "--selftest"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 failed" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_every_change_is_logged_and_go_verifies_the_log(srv, oracle, tmp_path):
    vkey = srv.cli("log", "key").stdout.strip()
    # <name>+<8 hex digits>+<base64>, the base64 possibly holding '+' itself.
    assert re.fullmatch(r"[^+\s]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*", vkey), vkey
    indexes = []
    a1, r = upload(srv, "logged-a", "1.0", tmp_path)
    indexes.append(int(r.headers["Palisade-Log-Index"]))
    a2, r = upload(srv, "logged-a", "1.1", tmp_path)
    indexes.append(int(r.headers["Palisade-Log-Index"]))
    b1, r = upload(srv, "ledger-zeta", "1.0", tmp_path)
    indexes.append(int(r.headers["Palisade-Log-Index"]))
    assert indexes == sorted(indexes) and len(set(indexes)) == 3, indexes
    srv.cli("yank", "logged-a", "1.0", "--reason", "broken")
    # A typosquat of a popular name is held for review: a `hold` entry, not `publish`.
    w = WheelBuilder("reqeusts", "1.0").build(tmp_path)
    r = srv.upload_raw(srv.owner_token, w.name, w.read_bytes(), name="reqeusts", version="1.0")
    assert r.status_code == 200, r.text
    held = w

    started = time.monotonic()
    c = settled(srv, log_len(srv))
    assert time.monotonic() - started < 5, "no checkpoint within 5 s"
    assert c.size == log_len(srv)

    # A proof for a published file, as its uploader would fetch it.
    r = srv.get(f"/log/proof/{a1.name}")
    assert r.status_code == 200, r.text
    assert r.text.startswith("c2sp.org/tlog-proof@v1\n")
    proof = tmp_path / "a1.tlog-proof"
    proof.write_text(r.text)
    assert srv.get("/log/proof/no-such-file-1.0.tar.gz").status_code == 404

    out = json.loads(run_oracle(oracle, srv, vkey, "-origin", c.origin, "-proof", str(proof)).stdout)
    assert out["size"] == c.size and out["root"] == c.root and out["proofs_checked"] == 1
    entries = out["entries"]
    assert f"pypi publish logged-a 1.0 {a1.name} sha256:{sha256(a1)} by user:owner" in entries, entries
    assert f"pypi publish ledger-zeta 1.0 {b1.name} sha256:{sha256(b1)} by user:owner" in entries
    assert any(e.startswith("pypi yank logged-a 1.0 * by cli:") for e in entries), entries
    assert any(e.startswith(f"pypi hold reqeusts 1.0 {held.name} sha256:{sha256(held)}") for e in entries), entries
    assert entries[indexes[0]].startswith(f"pypi publish logged-a 1.0 {a1.name}")

    # The log grows; the Go verifier proves the new tree extends the old one.
    old = c
    srv.cli("remove-file", a2.name)
    srv.cli("project", "status", "ledger-zeta", "archived", "--reason", "done")
    c2 = settled(srv, old.size + 2)
    out = json.loads(run_oracle(oracle, srv, vkey, "-old-size", str(old.size), "-old-root", old.root).stdout)
    assert out["size"] == c2.size
    assert any(e.startswith(f"pypi remove logged-a {a2.name} sha256:{sha256(a2)}") for e in out["entries"]), out["entries"]
    assert any(e.startswith("pypi status ledger-zeta archived") for e in out["entries"])
    # Tiles are immutable and served with caching headers; beyond the tree there is nothing yet.
    r = srv.get("/log/tile/0/000.p/1")
    assert r.status_code == 200 and "immutable" in r.headers["Cache-Control"] and len(r.content) == 32
    r = srv.get("/log/tile/entries/001")
    assert r.status_code == 404 and r.headers.get("Retry-After"), r.headers
    assert srv.get("/log/tile/0/0000").status_code == 400


def test_palisade_log_verify_checks_signature_consistency_and_files(srv, palisade_bin, tmp_path):
    vkey = srv.cli("log", "key").stdout.strip()
    state = tmp_path / "state"
    w, _ = upload(srv, "verified", "1.0", tmp_path)
    settled(srv, log_len(srv))

    def verify(*files: Path, key: str = vkey, url: str = srv.url, check: bool | None = True):
        proc = subprocess.run([str(palisade_bin), "log", "verify", "--url", url, "--key", key, "--state", str(state), *map(str, files)],
                              capture_output=True, text=True, timeout=120)
        if check is True:
            assert proc.returncode == 0, f"palisade log verify failed:\n{proc.stdout}\n{proc.stderr}"
        elif check is False:
            assert proc.returncode != 0, f"palisade log verify passed:\n{proc.stdout}\n{proc.stderr}"
        return proc

    proc = verify(w)
    assert f"OK {w}" in proc.stdout and "sha256:" in proc.stdout, proc.stdout
    assert "signature verified" in proc.stderr
    # A second run proves consistency with the checkpoint the first one kept.
    upload(srv, "verified", "1.1", tmp_path)
    settled(srv, log_len(srv))
    proc = verify()
    assert "consistent with the checkpoint seen before" in proc.stderr, proc.stderr
    # A file the log never saw.
    stranger = WheelBuilder("never-uploaded", "1.0").build(tmp_path)
    proc = verify(stranger, check=False)
    assert "NOT IN LOG" in proc.stdout and "SECURITY ERROR" not in proc.stderr, proc.stdout + proc.stderr

    # Offline, with the proof the uploader kept: no server needed.
    r = srv.get(f"/log/proof/{w.name}")
    assert r.status_code == 200, r.text
    proof = tmp_path / "verified.tlog-proof"
    proof.write_text(r.text)
    offline = subprocess.run([str(palisade_bin), "log", "verify", "--key", vkey, "--proof", str(proof), str(w)],
                             capture_output=True, text=True, timeout=60)
    assert offline.returncode == 0 and f"OK {w}: published by entry" in offline.stdout, offline.stdout + offline.stderr
    forged = tmp_path / "forged.tlog-proof"
    forged.write_text(r.text.replace("\nindex ", "\nindex 1", 1))
    offline = subprocess.run([str(palisade_bin), "log", "verify", "--key", vkey, "--proof", str(forged)],
                             capture_output=True, text=True, timeout=60)
    assert offline.returncode == 1 and "SECURITY ERROR" in offline.stderr, offline.stdout + offline.stderr

    # A file removed since it was published is no longer served: verify says so.
    gone, _ = upload(srv, "verified", "1.2", tmp_path)
    srv.cli("remove-file", gone.name)
    settled(srv, log_len(srv))
    proc = verify(gone, check=False)
    assert f"NOT SERVED {gone}" in proc.stdout and "pypi remove verified" in proc.stdout, proc.stdout + proc.stderr

    # Another key: the checkpoint is forged as far as this user knows.
    other = Server(palisade_bin, tmp_path / "other", "transparency-other", SEQUENCE).start()
    try:
        other_key = other.cli("log", "key").stdout.strip()
        assert other_key != vkey
        proc = verify(key=other_key, check=False)
        assert "SECURITY ERROR" in proc.stderr, proc.stderr
    finally:
        other.stop()


def test_a_rewritten_history_under_the_same_key_is_a_security_error(srv, palisade_bin, oracle, tmp_path):
    """A second instance holding the same signing key and origin (a compromised key, or a log
    rebuilt from a backup) signs a history that differs from what a user saw: both the Go
    verifier and `palisade log verify` refuse it, naming both checkpoints."""
    vkey = srv.cli("log", "key").stdout.strip()
    seen = settled(srv, log_len(srv))
    state = tmp_path / "state"
    subprocess.run([str(palisade_bin), "log", "verify", "--url", srv.url, "--key", vkey, "--state", str(state)], check=True,
                   capture_output=True, timeout=120)

    fork_root = tmp_path / "fork"
    (fork_root / "data").mkdir(parents=True)
    shutil.copy(srv.data_dir / "log-signing.key", fork_root / "data" / "log-signing.key")
    fork = Server(palisade_bin, fork_root, "transparency-fork", {**SEQUENCE, "PALISADE_TRANSPARENCY_ORIGIN": seen.origin})
    fork.start()
    try:
        assert fork.cli("log", "key").stdout.strip() == vkey
        fork.create_user("owner")
        fork.owner_token = fork.create_token("owner")
        for i in range(seen.size + 1):
            upload(fork, "forked", f"1.{i}", tmp_path / f"f{i}")
        settled(fork, seen.size + 1)
        proc = subprocess.run([str(palisade_bin), "log", "verify", "--url", fork.url, "--key", vkey, "--state", str(state)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0 and "SECURITY ERROR" in proc.stderr, proc.stdout + proc.stderr
        assert seen.root in proc.stderr, "the message shows the checkpoint seen before"
        go = run_oracle(oracle, fork, vkey, "-old-size", str(seen.size), "-old-root", seen.root, check=False)
        assert go.returncode == 1 and "FAIL" in go.stderr, go.stdout + go.stderr
    finally:
        fork.stop()


def test_palisade_log_audit_finds_tampering(make_server, tmp_path):
    srv = make_server(SEQUENCE)
    srv.create_user("owner")
    srv.owner_token = srv.create_token("owner")
    a, _ = upload(srv, "audited", "1.0", tmp_path)
    b, _ = upload(srv, "audited", "1.1", tmp_path)
    c, _ = upload(srv, "audited", "1.2", tmp_path)
    srv.cli("remove-file", c.name)
    assert "agrees" in srv.cli("log", "audit").stderr

    # The stored bytes of a file change behind Palisade's back.
    blob = next(p for p in (srv.data_dir / "files").rglob(sha256(a)))
    original = blob.read_bytes()
    blob.chmod(0o644)
    blob.write_bytes(original + b"tampered")
    proc = srv.cli("log", "audit", check=False)
    assert proc.returncode == 1 and f"{a.name}: the stored bytes have sha256" in proc.stdout, proc.stdout + proc.stderr
    blob.write_bytes(original)

    # A database row is changed, then one disappears without a removal entry.
    srv.execute_sql(f"UPDATE files SET sha256 = '{'0' * 64}' WHERE filename = '{b.name}'")
    proc = srv.cli("log", "audit", check=False)
    assert proc.returncode == 1 and f"{b.name}: the database says sha256 {'0' * 64}" in proc.stdout, proc.stdout
    srv.execute_sql(f"UPDATE files SET sha256 = '{sha256(b)}' WHERE filename = '{b.name}'")
    srv.execute_sql(f"DELETE FROM files WHERE filename = '{b.name}'")
    proc = srv.cli("log", "audit", check=False)
    assert proc.returncode == 1 and f"records {b.name}, which is gone with no removal entry" in proc.stdout, proc.stdout

    # A rewritten entry no longer hashes to the signed checkpoints.
    srv.execute_sql(f"UPDATE log_entries SET entry = entry || ' forged' WHERE filename = '{a.name}'")
    proc = srv.cli("log", "audit", check=False)
    assert "signs root" in proc.stdout, proc.stdout


def test_the_origin_cannot_change(make_server):
    srv = make_server({"PALISADE_TRANSPARENCY_ORIGIN": "first.example/log"})
    srv.stop()
    srv.env["PALISADE_TRANSPARENCY_ORIGIN"] = "second.example/log"
    proc = srv.cli("log", "key", check=False)
    assert proc.returncode == 1 and "cannot change" in proc.stderr, proc.stderr
    del srv.env["PALISADE_TRANSPARENCY_ORIGIN"]
    assert srv.cli("log", "key").returncode == 0
