"""Several `palisade serve` nodes on one PostgreSQL database and one bucket (issue 14): what one
node accepts, the others serve; a change on one is seen on the others within a second; races
between nodes have exactly one winner, answered as a single node answers; a node killed with
SIGKILL during uploads loses none that it acknowledged; and mail a dead node had claimed is sent
by another.

Runs only in the cluster layout (scripts/test runs it with PALISADE_E2E_LAYOUT=cluster)."""

from __future__ import annotations

import hashlib
import json
import secrets
import socket
import subprocess
import threading
import time

import pytest
import requests

from distbuilder import SdistBuilder, WheelBuilder
from test_transparency import oracle  # noqa: F401  (the Go verifier, built once per module)
from support import LAYOUT, Server, cluster_env, eventually, http_session, installed_versions, legacy_request, race_uploads

pytestmark = pytest.mark.skipif(LAYOUT != "cluster", reason="several nodes need the cluster layout (PALISADE_E2E_LAYOUT=cluster)")


@pytest.fixture(scope="module")
def nodes(palisade_bin, tmp_path_factory):
    """Two nodes, each with its own data directory (its tmp/), sharing the database and bucket."""
    env = cluster_env()
    made = [Server(palisade_bin, tmp_path_factory.mktemp(f"node-{n}"), f"node-{n}", env).start() for n in "ab"]
    a, b = made
    a.create_user("clusterer")
    token = a.create_token("clusterer")
    yield a, b, token
    for srv in made:
        srv.stop()


def test_uploaded_through_one_node_installed_through_another(nodes, clients, tmp_path):
    a, b, token = nodes
    wheel = WheelBuilder("across-nodes", "1.0").build(tmp_path / "d")
    clients.twine_upload(a, token, wheel)
    for installer, install in (("pip", clients.pip_install), ("uv", clients.uv_install)):
        target = tmp_path / f"target-{installer}"
        install(b, "across-nodes", target=target)
        assert installed_versions(target)["across-nodes"] == "1.0", installer
    listed = b.project_files("across-nodes")
    assert b.download(listed[wheel.name]) == wheel.read_bytes()


def test_a_yank_on_one_node_is_seen_on_the_others_within_a_second(nodes, tmp_path):
    a, b, token = nodes
    wheel = WheelBuilder("yank-across", "1.0").build(tmp_path / "d")
    r = a.upload_raw(token, wheel.name, wheel.read_bytes(), name="yank-across", version="1.0")
    assert r.status_code == 200, r.text
    # b has the page in its cache before the change.
    assert b.project_files("yank-across")[wheel.name].get("yanked") is False
    assert b.project_files("yank-across")[wheel.name].get("yanked") is False
    owner = a.accounts["clusterer"]["session"]
    r = a.api("POST", "/api/projects/yank-across/releases/1.0/yank", owner, json={"reason": "broken"})
    assert r.status_code == 200, r.text
    changed = time.monotonic()
    while b.project_files("yank-across")[wheel.name].get("yanked") != "broken":
        assert time.monotonic() - changed < 5, "node b still serves the file as not yanked"
        time.sleep(0.02)
    delay = time.monotonic() - changed
    assert delay < 1.0, f"node b saw the yank after {delay:.2f}s"


def test_a_feed_synced_through_one_node_is_enforced_on_every_node_within_seconds(nodes, tmp_path):
    """A record that blocks, stored once (by a sync run from the CLI against the shared database),
    is enforced by every node: both stop listing the release and answer 403 for its file."""
    a, b, token = nodes
    wheel = WheelBuilder("fed-across", "1.0").build(tmp_path / "d")
    r = a.upload_raw(token, wheel.name, wheel.read_bytes(), name="fed-across", version="1.0")
    assert r.status_code == 200, r.text
    for node in (a, b):  # both have the page cached
        assert wheel.name in node.project_files("fed-across")
    folder = tmp_path / "feed"
    folder.mkdir()
    record = {
        "schema_version": "1.7.4",
        "id": "MAL-2026-990100",
        "modified": "2026-11-01T00:00:00Z",
        "summary": "Malicious code in fed-across (PyPI)",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "fed-across"}, "versions": ["1.0"]}],
    }
    (folder / "MAL-2026-990100.json").write_text(json.dumps(record))
    config = tmp_path / "feed.toml"
    config.write_text(f'[[sharing.feeds]]\nname = "cluster-test"\nsource = "{folder}"\n')
    a.cli("osv", "sync", env_extra={"PALISADE_CONFIG": str(config)})
    synced = time.monotonic()
    for node in (a, b):
        while wheel.name in node.project_files("fed-across"):
            assert time.monotonic() - synced < 10, f"{node.name} still lists the blocked file"
            time.sleep(0.05)
        r = node.get(f"/files/{wheel.name}")
        assert r.status_code == 403 and "MAL-2026-990100" in r.reason, (node.name, r.status_code, r.reason)
    print(f"both nodes enforced the record {time.monotonic() - synced:.2f} s after the sync")


def test_the_same_filename_with_different_bytes_raced_on_two_nodes_has_one_winner(nodes):
    a, b, token = nodes
    variants = [WheelBuilder("clash-across", "1.0", payload=f"variant {i}".encode()) for i in range(4)]
    jobs = [((a, b)[i % 2], token, v.default_filename(), v.to_bytes(), "clash-across", "1.0") for i, v in enumerate(variants)]
    results = race_uploads(jobs)
    codes = [r.status_code for r in results]
    assert codes.count(200) == 1, [(r.status_code, r.text) for r in results]
    for r in results:
        if r.status_code != 200:
            assert r.status_code == 400 and "File already exists" in r.text, r.text
    winner = variants[codes.index(200)]
    for node in (a, b):
        listed = node.project_files("clash-across")
        assert list(listed) == [winner.default_filename()]
        assert node.download(listed[winner.default_filename()]) == winner.to_bytes()


def test_two_sdists_of_one_release_raced_on_two_nodes_one_is_accepted(nodes, tmp_path):
    a, b, token = nodes
    first = SdistBuilder("sdist-race", "1.0").build(tmp_path / "one")
    # Another spelling of the same release: its own filename, the same identity.
    second = SdistBuilder("Sdist_Race", "1.0.0").build(tmp_path / "two")
    assert first.name != second.name
    jobs = [(a, token, first.name, first.read_bytes(), "sdist-race", "1.0"), (b, token, second.name, second.read_bytes(), "Sdist_Race", "1.0.0")]
    results = race_uploads(jobs)
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 400], [(r.status_code, r.text) for r in results]
    loser = next(r for r in results if r.status_code == 400)
    assert "already" in loser.text, loser.text
    for node in (a, b):
        sdists = [f for f in node.project_files("sdist-race") if f.endswith(".tar.gz")]
        assert len(sdists) == 1, sdists


def test_a_node_killed_during_uploads_loses_nothing_it_acknowledged(palisade_bin, tmp_path):
    env = cluster_env()
    a = Server(palisade_bin, tmp_path / "a", "doomed", env).start()
    b = Server(palisade_bin, tmp_path / "b", "survivor", env).start()
    try:
        a.create_user("crasher")
        token = a.create_token("crasher")
        wheels = [WheelBuilder("crash-across", f"1.{i}", payload=b"x" * (200_000 + i)) for i in range(24)]
        acknowledged: dict[str, str] = {}
        lock = threading.Lock()

        def upload(node: Server, w: WheelBuilder):
            req = legacy_request(node.upload_url, token, w.default_filename(), w.to_bytes(), name="crash-across", version=w.version)
            try:
                r = http_session().send(req, timeout=60)
            except requests.RequestException:
                return  # the node died under it: not acknowledged
            if r.status_code == 200:
                with lock:
                    acknowledged[w.default_filename()] = hashlib.sha256(w.to_bytes()).hexdigest()

        threads = [threading.Thread(target=upload, args=((a, b)[i % 2], w)) for i, w in enumerate(wheels)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        a.kill9()
        for t in threads:
            t.join(timeout=90)
        assert acknowledged, "no upload was acknowledged"
        listed = b.project_files("crash-across")
        # Every acknowledged file is served, with its bytes; nothing is listed that is not whole.
        for filename, sha in acknowledged.items():
            assert filename in listed, f"{filename} was acknowledged but is not listed"
        for filename, f in listed.items():
            assert hashlib.sha256(b.download(f)).hexdigest() == f["hashes"]["sha256"], filename
        # The survivor also takes the uploads that never reached the dead node.
        missing = [w for w in wheels if w.default_filename() not in listed]
        for w in missing:
            r = b.upload_raw(token, w.default_filename(), w.to_bytes(), name="crash-across", version=w.version)
            assert r.status_code == 200, r.text
        assert len(b.project_files("crash-across")) == len(wheels)
    finally:
        a.kill9()
        b.stop()


def test_mail_claimed_by_a_node_that_dies_is_sent_by_another(palisade_bin, tmp_path, sink):
    env = {**cluster_env(), "PALISADE_JOBS_LEASE_SECS": "5"}
    # Node a's SMTP server takes the connection and never answers: a's worker claims the mail and
    # hangs on it until a is killed.
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(16)
    try:
        smtp_a = {"PALISADE_SMTP_HOST": "127.0.0.1", "PALISADE_SMTP_PORT": str(blackhole.getsockname()[1]), "PALISADE_SMTP_SECURITY": "none"}
        a = Server(palisade_bin, tmp_path / "a", "mail-doomed", {**env, **smtp_a}).start()
        password = "mail-takeover-Quartz!-" + secrets.token_hex(4)
        a.cli_input(password + "\n", "user", "create", "postie", "--email", "postie@example.test", "--email-verified", "--password-stdin")
        r = a.http.post(f"{a.url}/api/password/forgot", json={"login": "postie"}, timeout=30)
        assert r.status_code == 202, r.text

        def claimed():
            jobs = [j for j in map(json.loads, a.cli("jobs", "list", "--json").stdout.splitlines()) if j["kind"] == "mail"]
            assert jobs and all(j["state"] == "queued" and j["locked_by"] for j in jobs), jobs
            return jobs

        jobs = eventually(claimed, timeout=20)
        a.kill9()
        b = Server(palisade_bin, tmp_path / "b", "mail-survivor", {**env, **sink.env()}).start()
        try:
            mail = sink.wait_for(to="postie@example.test", subject_contains="Password reset", timeout=30)
            assert "reset" in mail.body.lower()

            def done():
                states = {j["id"]: j for j in (json.loads(line) for line in b.cli("jobs", "list", "--json").stdout.splitlines())}
                for j in jobs:
                    assert states[j["id"]]["state"] == "done" and states[j["id"]]["attempts"] == 2, states
                    assert states[j["id"]]["locked_by"] is None

            eventually(done, timeout=20)
            # A failed job waits for an administrator, who can queue it again.
            b.execute_sql(f"UPDATE jobs SET state = 'failed', payload = '{{\"to\": \"postie@example.test\", \"subject\": \"again\", \"body\": \"x\"}}' WHERE id = {int(jobs[0]['id'])}")
            failed = b.cli("jobs", "list", "--state", "failed").stdout
            assert str(jobs[0]["id"]) in failed, failed
            retried = b.cli("jobs", "retry", str(jobs[0]["id"]))
            assert "queued again" in retried.stdout
            sink.wait_for(to="postie@example.test", subject_contains="again", timeout=30)
            refused = b.cli("jobs", "retry", str(jobs[0]["id"]), check=False)
            assert refused.returncode == 1 and "not failed" in refused.stderr, refused
        finally:
            b.stop()
    finally:
        blackhole.close()


def test_the_cluster_benchmark_runs(palisade_bin, tmp_path):
    """`bench/cluster.py --smoke`: both layouts set up, load and measure against today's binary
    (the figures mean nothing at this size; the harness must not rot)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from support import isolated_env

    bench = Path(__file__).resolve().parents[2] / "bench" / "cluster.py"
    env = isolated_env(tmp_path / "env", {
        "PALISADE_BIN": str(palisade_bin),
        "PALISADE_TEST_DATABASE_URL": os.environ["PALISADE_TEST_DATABASE_URL"],
        "PALISADE_TEST_S3_ENDPOINT": os.environ["PALISADE_TEST_S3_ENDPOINT"],
    })
    proc = subprocess.run([sys.executable, str(bench), "--smoke", "--work", str(tmp_path / "work")], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    results = json.loads((tmp_path / "work" / "results.json").read_text())
    for layout, nodes in (("embedded", 1), ("cluster", 2)):
        r = results[layout]
        assert r["nodes"] == nodes
        assert sum(b["files"] for b in r["upload_blocks"]) == results["files"] and r["upload_files_per_s"] > 0, r
        assert len(r["pages"]["alone"]) == nodes and all(p["rps"] > 0 for p in r["pages"]["alone"]), r["pages"]
    assert "Cluster (2 nodes, PostgreSQL + S3) vs embedded" in proc.stdout, proc.stdout


def test_a_lockout_earned_on_one_node_holds_on_the_others(palisade_bin, tmp_path):
    """Guessing limits are one budget across the nodes: five wrong passwords on node a lock the
    (account, address) pair on node b too, even for the right password."""
    env = {**cluster_env(), "PALISADE_ACCOUNTS_MAX_FAILURES": "5"}
    a = Server(palisade_bin, tmp_path / "a", "guess-a", env).start()
    b = Server(palisade_bin, tmp_path / "b", "guess-b", env).start()
    try:
        password = "lockout-Quartz!-" + secrets.token_hex(4)
        a.cli_input(password + "\n", "user", "create", "guessed", "--email", "guessed@example.test", "--email-verified", "--password-stdin")
        for i in range(5):
            r = a.http.post(f"{a.url}/api/login", json={"login": "guessed", "password": f"wrong-{i}"}, timeout=30)
            assert r.status_code == 401, f"{i}: {r.status_code} {r.text}"
        # One try on b (each try counts, so polling would lock b by itself), after the half-second
        # sharing interval, with the right password: b knows of a's five.
        time.sleep(1.5)
        r = b.http.post(f"{b.url}/api/login", json={"login": "guessed", "password": password}, timeout=30)
        assert r.status_code == 429, f"b let the pair in after five wrong passwords on a: {r.status_code} {r.text}"
        # A node started now reads the counts of the last lockout-long stretch, as of when they
        # were made: the pair is locked there too.
        c = Server(palisade_bin, tmp_path / "c", "guess-c", env).start()
        try:
            time.sleep(1.0)
            r = c.http.post(f"{c.url}/api/login", json={"login": "guessed", "password": password}, timeout=30)
            assert r.status_code == 429, f"a node started after the lockout let the pair in: {r.status_code} {r.text}"
        finally:
            c.stop()
    finally:
        a.stop()
        b.stop()


def test_nodes_never_sign_inconsistent_checkpoints(nodes, oracle, tmp_path):
    """Both nodes run the log's sequencer on one database: whichever signs, every checkpoint
    either node serves extends every earlier one (checked by Go's tlog), and no size ever has two
    roots."""
    a, b, token = nodes
    vkey = a.cli("log", "key").stdout.strip()
    assert b.cli("log", "key").stdout.strip() == vkey
    seen: dict[int, str] = {}
    conflicts: list[str] = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            for node in (a, b):
                r = node.get("/log/checkpoint")
                if r.status_code == 200:
                    _, size, root = r.text.split("\n")[:3]
                    if seen.setdefault(int(size), root) != root:
                        conflicts.append(f"size {size}: {seen[int(size)]} and {root}")
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        wheels = [WheelBuilder(f"logged-across-{i}", "1.0").build(tmp_path / f"w{i}") for i in range(12)]
        jobs = [((a, b)[i % 2], token, w.name, w.read_bytes(), f"logged-across-{i}", "1.0") for i, w in enumerate(wheels)]
        assert all(r.status_code == 200 for r in race_uploads(jobs))
        indexes = set()
        for w in wheels:

            def proof(name=w.name):
                r = b.get(f"/log/proof/{name}")
                assert r.status_code == 200, f"no proof for {name} yet: {r.status_code} {r.text}"
                return r.text

            indexes.add(eventually(proof, timeout=10).split("\nindex ")[1].split("\n")[0])
        assert len(indexes) == len(wheels), "every upload has an entry of its own"
    finally:
        stop.set()
        watcher.join()
    assert not conflicts, conflicts
    for size, root in sorted(seen.items()):
        proc = subprocess.run([str(oracle), "-url", f"{b.url}/log", "-vkey", vkey, "-old-size", str(size), "-old-root", root],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"checkpoint {size} {root} is not consistent with node b's newest:\n{proc.stderr}"
