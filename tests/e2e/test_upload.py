"""Uploading with twine: wheel and sdist, identical re-upload, duplicate filenames,
`--skip-existing`, and the uploader becoming owner of a new project."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest

from distbuilder import SdistBuilder, WheelBuilder, file_sha256
from support import JSON_V1, LAYOUT, legacy_fields

USER = "uploader"


@pytest.fixture(scope="module")
def token(server):
    server.create_user(USER)
    return server.create_token(USER)


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    d = tmp_path_factory.mktemp("upload-dists")
    return {
        "wheel": WheelBuilder("Up.Load-Demo", "1.0", summary="upload demo", requires_python=">=3.8").build(d),
        "sdist": SdistBuilder("Up.Load-Demo", "1.0", summary="upload demo", requires_python=">=3.8").build(d),
    }


@pytest.fixture(scope="module")
def uploaded(server, module_clients, token, dists):
    module_clients.twine_upload(server, token, dists["wheel"], dists["sdist"])
    return dists


def test_wheel_and_sdist_upload_are_listed_with_right_hashes(server, uploaded):
    files = server.project_files("up-load-demo")
    assert set(files) == {"up_load_demo-1.0-py3-none-any.whl", "up_load_demo-1.0.tar.gz"}
    for kind in ("wheel", "sdist"):
        path = uploaded[kind]
        f = files[path.name]
        assert f["hashes"]["sha256"] == file_sha256(path)
        assert f["size"] == path.stat().st_size
        body = server.download(f)
        assert hashlib.sha256(body).hexdigest() == file_sha256(path), f"downloaded {path.name} differs"
        assert body == path.read_bytes()


def test_upload_shows_in_project_list_and_html(server, uploaded):
    r = server.get("/simple/", headers={"Accept": JSON_V1})
    assert r.status_code == 200
    names = {p["name"].lower().replace("_", "-").replace(".", "-") for p in r.json()["projects"]}
    assert "up-load-demo" in names
    html = server.get("/simple/up-load-demo/", headers={"Accept": "text/html"})
    assert html.status_code == 200
    for path in uploaded.values():
        assert f">{path.name}</a>" in html.text


def test_identical_reupload_is_a_noop(server, clients, token, uploaded):
    before = server.project_files("up-load-demo")
    # twine: exit 0
    clients.twine_upload(server, token, uploaded["wheel"])
    # raw: 200
    data = uploaded["wheel"].read_bytes()
    r = server.upload_raw(token, uploaded["wheel"].name, data, name="Up.Load-Demo", version="1.0")
    assert r.status_code == 200, f"identical re-upload answered {r.status_code}: {r.text}"
    after = server.project_files("up-load-demo")
    assert set(after) == set(before)
    assert after[uploaded["wheel"].name]["hashes"] == before[uploaded["wheel"].name]["hashes"]
    assert after[uploaded["wheel"].name]["upload-time"] == before[uploaded["wheel"].name]["upload-time"]


def test_same_filename_different_bytes_is_rejected(server, clients, token, uploaded, tmp_path):
    changed = WheelBuilder("Up.Load-Demo", "1.0", summary="upload demo", requires_python=">=3.8",
                           payload=b"different bytes").build(tmp_path)
    assert changed.name == uploaded["wheel"].name
    assert file_sha256(changed) != file_sha256(uploaded["wheel"])

    r = server.upload_raw(token, changed.name, changed.read_bytes(), name="Up.Load-Demo", version="1.0")
    assert r.status_code == 400, f"expected 400, got {r.status_code}: {r.text}"
    assert r.text.startswith("File already exists"), f"body should start with 'File already exists': {r.text!r}"

    proc = clients.twine_upload(server, token, changed, check=False)
    assert "File already exists" in proc.output, clients.describe(proc)

    # the original is still what is served
    f = server.project_files("up-load-demo")[changed.name]
    assert f["hashes"]["sha256"] == file_sha256(uploaded["wheel"])
    assert server.download(f) == uploaded["wheel"].read_bytes()


def test_skip_existing_skips_conflicts_and_uploads_the_rest(server, clients, token, uploaded, tmp_path):
    changed = WheelBuilder("Up.Load-Demo", "1.0", summary="upload demo", requires_python=">=3.8",
                           payload=b"other bytes again").build(tmp_path / "a")
    new = WheelBuilder("Up.Load-Demo", "1.1", summary="upload demo").build(tmp_path / "b")
    proc = clients.twine_upload(server, token, changed, new, skip_existing=True)
    assert "Skipping" in proc.output, clients.describe(proc)
    files = server.project_files("up-load-demo")
    assert new.name in files
    assert files[new.name]["hashes"]["sha256"] == file_sha256(new)
    assert files[changed.name]["hashes"]["sha256"] == file_sha256(uploaded["wheel"])


def test_new_project_is_owned_by_the_uploader(server, uploaded):
    out = server.cli("project", "show", "up-load-demo").stdout
    assert USER in out, out
    assert "owner" in out.lower(), out



def test_md5_only_digest_is_checked(server, token, tmp_path):
    """Old uploaders send only `md5_digest` (urlsafe base64, no padding)."""

    def md5_field(data: bytes) -> str:
        return base64.urlsafe_b64encode(hashlib.md5(data).digest()).rstrip(b"=").decode()

    bad = WheelBuilder("md5only", "1.0").build(tmp_path / "bad")
    r = server.upload_raw(token, bad.name, bad.read_bytes(), name="md5only", version="1.0",
                          fields={"md5_digest": md5_field(b"something else")},
                          omit=["sha256_digest", "blake2_256_digest"])
    assert r.status_code == 400, f"wrong md5_digest accepted: {r.status_code} {r.text}"
    assert server.project_files("md5only") == {}

    good = WheelBuilder("md5only", "1.0").build(tmp_path / "good")
    r = server.upload_raw(token, good.name, good.read_bytes(), name="md5only", version="1.0",
                          fields={"md5_digest": md5_field(good.read_bytes())},
                          omit=["sha256_digest", "blake2_256_digest"])
    assert r.status_code == 200, f"{r.status_code}: {r.text}"
    assert server.project_files("md5only")[good.name]["hashes"]["sha256"] == file_sha256(good)


def test_wheel_with_build_tag_and_metadata_24(server, clients, token, tmp_path):
    w = WheelBuilder("tagged", "1.0", tag="py3-none-any", metadata_version="2.4",
                     filename="tagged-1.0-1-py3-none-any.whl").build(tmp_path)
    clients.twine_upload(server, token, w)
    assert w.name in server.project_files("tagged")


def test_large_upload_is_streamed_not_buffered(make_server, tmp_path):
    """A 64 MB upload succeeds and the server's peak memory grows by well under the file size.

    The baseline is taken after a small upload, so that the scanner's compiled rules (built once,
    at start) are counted in it and only what the large upload costs is measured."""
    srv = make_server()
    srv.create_user("big")
    tok = srv.create_token("big")
    small = WheelBuilder("largefile", "0.1").build(tmp_path)
    with open(small, "rb") as f:
        data = legacy_fields(small.name, small.read_bytes(), "largefile", "0.1")
        r = srv.http.post(srv.upload_url, data=data, files={"content": (small.name, f, "application/octet-stream")},
                          auth=("__token__", tok), timeout=60)
    assert r.status_code == 200, f"{r.status_code}: {r.text}"
    baseline_kb = _peak_rss_kb(srv.proc.pid)
    size = 64 * 1024 * 1024
    w = WheelBuilder("largefile", "1.0", payload=os.urandom(size), compress=False).build(tmp_path)
    with open(w, "rb") as f:
        data = legacy_fields(w.name, b"", "largefile", "1.0")
        h256, hb2 = hashlib.sha256(), hashlib.blake2b(digest_size=32)
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h256.update(chunk)
            hb2.update(chunk)
        data.update(sha256_digest=h256.hexdigest(), blake2_256_digest=hb2.hexdigest())
        f.seek(0)
        r = srv.http.post(srv.upload_url, data=data, files={"content": (w.name, f, "application/octet-stream")},
                          auth=("__token__", tok), timeout=120)
    assert r.status_code == 200, f"{r.status_code}: {r.text}"
    peak_kb = _peak_rss_kb(srv.proc.pid)
    grown_kb = peak_kb - baseline_kb
    # Into a bucket, a large file goes up as a multipart upload whose parts (S3's minimum is
    # 5 MiB) are held in memory while sent: one being filled, one on the way, and the client's
    # copy of it (measured: 13-21 MiB). A buffered 64 MiB upload would still be far above either bound.
    bound_mib = 40 if LAYOUT == "cluster" else 24
    assert grown_kb < bound_mib * 1024, f"server peak RSS grew by {grown_kb} kB (to {peak_kb} kB) for a {size >> 20} MiB upload: is it buffered?"
    f = srv.project_files("largefile")[w.name]
    assert f["hashes"]["sha256"] == h256.hexdigest()
    assert f["size"] == w.stat().st_size
    got = srv.get(srv.file_url(f), stream=True)
    h = hashlib.sha256()
    for chunk in got.iter_content(1 << 20):
        h.update(chunk)
    assert h.hexdigest() == h256.hexdigest()


def _peak_rss_kb(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/PID/status")
