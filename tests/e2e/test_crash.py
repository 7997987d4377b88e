"""Crash safety: `kill -9` right after an acknowledged upload loses nothing, and `kill -9`
in the middle of an upload leaves nothing behind after a restart."""

from __future__ import annotations

import hashlib
import os
import time

from distbuilder import WheelBuilder
from support import legacy_request, send_partial


def test_acknowledged_upload_survives_kill9(make_server, tmp_path):
    srv = make_server()
    srv.create_user("crash")
    token = srv.create_token("crash")
    wheels = [WheelBuilder("durable", f"1.{i}", payload=os.urandom(20_000), compress=False).build(tmp_path)
              for i in range(3)]
    for w in wheels:
        r = srv.upload_raw(token, w.name, w.read_bytes(), name="durable", version=w.name.split("-")[1])
        assert r.status_code == 200, f"{r.status_code}: {r.text}"
    srv.kill9()  # no graceful shutdown, straight after the last 200

    srv.start()
    files = srv.project_files("durable")
    assert set(files) == {w.name for w in wheels}
    for w in wheels:
        data = w.read_bytes()
        assert files[w.name]["hashes"]["sha256"] == hashlib.sha256(data).hexdigest()
        body = srv.download(files[w.name])
        assert hashlib.sha256(body).hexdigest() == hashlib.sha256(data).hexdigest()
    srv.assert_no_debris()
    # the restarted server still takes uploads, and the token still works
    w = WheelBuilder("durable", "2.0").build(tmp_path)
    r = srv.upload_raw(token, w.name, w.read_bytes(), name="durable", version="2.0")
    assert r.status_code == 200, f"{r.status_code}: {r.text}"


def test_kill9_mid_upload_leaves_nothing(make_server, tmp_path):
    srv = make_server()
    srv.create_user("crash")
    token = srv.create_token("crash")
    good = WheelBuilder("survivor", "1.0").build(tmp_path)
    r = srv.upload_raw(token, good.name, good.read_bytes(), name="survivor", version="1.0")
    assert r.status_code == 200, f"{r.status_code}: {r.text}"

    big = WheelBuilder("halfway", "1.0", payload=os.urandom(2_000_000), compress=False).to_bytes()
    req = legacy_request(srv.upload_url, token, "halfway-1.0-py3-none-any.whl", big,
                         name="halfway", version="1.0")
    sock = send_partial(req, fraction=0.5)
    try:
        # give the server time to start spooling the body into tmp/
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not srv.tmp_entries():
            time.sleep(0.05)
        srv.kill9()
    finally:
        sock.close()
    # and debris the way an older crash could have left it
    stray = srv.data_dir / "tmp" / "e2e-stray-upload.part"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"half an upload")

    srv.start()
    r = srv.get("/simple/halfway/")
    assert r.status_code == 404, f"/simple/halfway/ -> {r.status_code}"
    assert srv.get("/pypi/halfway/json").status_code == 404
    assert srv.tmp_entries() == [], f"tmp/ not cleaned at start: {srv.tmp_entries()}"
    listed = srv.all_listed_files()
    assert set(listed) == {good.name}
    assert len(srv.blob_files()) == len(listed), srv.blob_files()
    assert srv.download(listed[good.name]) == good.read_bytes()


def test_graceful_restart_keeps_everything(make_server, tmp_path):
    srv = make_server()
    srv.create_user("crash")
    token = srv.create_token("crash")
    w = WheelBuilder("graceful", "1.0").build(tmp_path)
    assert srv.upload_raw(token, w.name, w.read_bytes(), name="graceful", version="1.0").status_code == 200
    srv.stop()
    assert srv.proc.returncode in (0, -15), f"SIGTERM should end the server promptly, exit code {srv.proc.returncode}"
    srv.start()
    assert w.name in srv.project_files("graceful")
