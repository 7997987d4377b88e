"""Malformed uploads: each gets a clear plain-text 4xx and leaves nothing behind (not in
the simple API, not in the JSON API, nothing in `tmp/`, no stray blob in `files/`)."""

from __future__ import annotations

import io
import os
import re
import socket
import warnings
import zipfile

import pytest

from distbuilder import SdistBuilder, WheelBuilder
from support import Server, legacy_request, read_http_response, send_partial

USER = "mallory"


@pytest.fixture(scope="module")
def token(server):
    server.create_user(USER)
    return server.create_token(USER)


@pytest.fixture(scope="module")
def existing(server, module_clients, token, tmp_path_factory):
    """A project with one sdist, for the 'second sdist of a release' case."""
    d = tmp_path_factory.mktemp("existing")
    sdist = SdistBuilder("twosdist", "1.0").build(d)
    wheel = WheelBuilder("twosdist", "1.0").build(d)
    module_clients.twine_upload(server, token, sdist, wheel)
    return {sdist.name, wheel.name}


def assert_clear_error(r, status=400, keywords=()):
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text[:500]}"
    ctype = r.headers.get("content-type", "")
    assert ctype.startswith("text/plain"), f"error body should be plain text, Content-Type is {ctype!r}"
    body = r.text.strip()
    assert len(body) >= 10, f"error body is not a clear message: {body!r}"
    assert "<html" not in body.lower()
    if keywords:
        assert any(k in body.lower() for k in keywords), f"message {body!r} mentions none of {keywords}"


def assert_absent(server, project):
    project = re.sub(r"[-_.]+", "-", project).lower()
    r = server.get(f"/simple/{project}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    assert r.status_code == 404, f"/simple/{project}/ should be 404 after a rejected upload: {r.status_code} {r.text[:300]}"
    r = server.get(f"/pypi/{project}/json")
    assert r.status_code == 404, f"/pypi/{project}/json should be 404: {r.status_code} {r.text[:300]}"


def wheel_bytes(**kw) -> bytes:
    return WheelBuilder(**kw).to_bytes()


def zip_with(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


def _valid(name, version="1.0"):
    return WheelBuilder(name, version).to_bytes()


def _dup_member_wheel(name):
    """A wheel whose METADATA appears twice, the second copy adding a dependency: readers
    that take the first entry and readers that take the last one see different packages
    (ZIP parser confusion), so the index must refuse it."""
    good = WheelBuilder(name, "1.0")
    members = good.members()
    evil_meta = WheelBuilder(name, "1.0", requires_dist=["evil-dependency"]).metadata_bytes()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        with zipfile.ZipFile(buf, "w") as zf:
            for path, data in members:
                zf.writestr(zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0)), data)
            zf.writestr(zipfile.ZipInfo(f"{good.dist_info}/METADATA", date_time=(2020, 1, 1, 0, 0, 0)), evil_meta)
    return buf.getvalue()


# (id, project, version, filename, content, extra form fields, expected status, message keywords)
CASES = [
    ("corrupt-zip", "corruptzip", "1.0", "corruptzip-1.0-py3-none-any.whl",
     b"PK\x03\x04" + os.urandom(300), {}, ("zip", "archive", "corrupt", "invalid", "wheel")),
    ("truncated-zip", "truncatedzip", "1.0", "truncatedzip-1.0-py3-none-any.whl",
     _valid("truncatedzip")[:-60], {}, ("zip", "archive", "corrupt", "invalid", "wheel", "truncat")),
    ("metadata-name-mismatch", "namemismatch", "1.0", "namemismatch-1.0-py3-none-any.whl",
     wheel_bytes(name="namemismatch", version="1.0", metadata_name="somethingelse"), {}, ("name",)),
    ("metadata-version-mismatch", "vermismatch", "1.0", "vermismatch-1.0-py3-none-any.whl",
     wheel_bytes(name="vermismatch", version="1.0", metadata_version_field="2.0"), {}, ("version",)),
    ("form-name-mismatch", "formmismatch", "1.0", "formmismatch-1.0-py3-none-any.whl",
     _valid("formmismatch"), {"name": "someotherform"}, ("name",)),
    ("wrong-sha256", "wrongsha", "1.0", "wrongsha-1.0-py3-none-any.whl",
     _valid("wrongsha"), {"sha256_digest": "0" * 64}, ("digest", "sha256", "hash")),
    ("wrong-blake2", "wrongblake", "1.0", "wrongblake-1.0-py3-none-any.whl",
     _valid("wrongblake"), {"blake2_256_digest": "f" * 64}, ("digest", "blake2", "hash")),
    ("bad-filename-foo.whl", "foo", "1.0", "foo.whl", _valid("foo"), {}, ("filename", "file name", "wheel")),
    ("bad-filename-zip", "foo", "1.0", "Foo-1.0-py3-none-any.zip", _valid("foo"), {},
     ("filename", "file name", "extension", "zip")),
    ("bad-filename-egg", "eggy", "1.0", "eggy-1.0-py3.11.egg",
     zip_with({"EGG-INFO/PKG-INFO": b"Metadata-Version: 1.1\nName: eggy\nVersion: 1.0\n"}),
     {"filetype": "bdist_egg", "pyversion": "3.11"}, ("egg", "filename", "file name", "type")),
    ("wheel-without-metadata", "nometa", "1.0", "nometa-1.0-py3-none-any.whl",
     wheel_bytes(name="nometa", version="1.0", omit_metadata=True), {}, ("metadata",)),
    ("zip-path-traversal", "traversal", "1.0", "traversal-1.0-py3-none-any.whl",
     wheel_bytes(name="traversal", version="1.0", extra_files={"../../evil.py": b"print('pwned')\n"}), {},
     ("path", "..", "travers", "unsafe", "invalid")),
    ("zip-absolute-path", "abspath", "1.0", "abspath-1.0-py3-none-any.whl",
     wheel_bytes(name="abspath", version="1.0", extra_files={"/tmp/evil.py": b"print('pwned')\n"}), {},
     ("path", "absolute", "unsafe", "invalid")),
    ("filename-path-traversal", "evil", "1.0", "../../evil-1.0-py3-none-any.whl", _valid("evil"), {},
     ("filename", "file name", "path", "invalid")),
    ("filename-with-slash", "evil", "1.0", "sub/evil-1.0-py3-none-any.whl", _valid("evil"), {},
     ("filename", "file name", "path", "invalid")),
    ("zip-duplicate-members", "dupmember", "1.0", "dupmember-1.0-py3-none-any.whl",
     _dup_member_wheel("dupmember"), {}, ("duplicate", "zip", "archive", "invalid", "twice")),
    ("sdist-metadata-name-mismatch", "sdistmismatch", "1.0", "sdistmismatch-1.0.tar.gz",
     SdistBuilder("sdistmismatch", "1.0", metadata_name="notthisone").to_bytes(), {}, ("name",)),
    ("sdist-filename-not-normalized", "SdUpper", "1.0", "SdUpper-1.0.tar.gz",
     SdistBuilder("SdUpper", "1.0", root_dir="SdUpper-1.0").to_bytes(), {}, ("filename", "normali")),
    ("sdist-path-traversal", "sdtraversal", "1.0", "sdtraversal-1.0.tar.gz",
     SdistBuilder("sdtraversal", "1.0", extra_files={"../evil.py": b"x = 1\n"}).to_bytes(), {},
     ("path", "unsafe", "invalid")),
    ("sdist-corrupt-gzip", "sdistcorrupt", "1.0", "sdistcorrupt-1.0.tar.gz",
     b"\x1f\x8b\x08\x00" + os.urandom(200), {}, ("gzip", "tar", "archive", "corrupt", "invalid", "sdist")),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_malformed_upload_rejected(server, token, existing, case):
    _id, project, version, filename, content, fields, keywords = case
    r = server.upload_raw(token, filename, content, name=project, version=version, fields=fields)
    assert_clear_error(r, 400, keywords)
    assert_absent(server, project)
    server.assert_no_debris()
    # nothing was written next to or above the data dir
    for d in (server.data_dir, server.data_dir.parent, server.data_dir.parent.parent):
        assert not list(d.glob("evil*")), f"stray file in {d}"


def test_second_sdist_for_release_rejected(server, token, existing):
    # 1.0.0 is the same release as 1.0 under PEP 440
    data = SdistBuilder("twosdist", "1.0.0").to_bytes()
    r = server.upload_raw(token, "twosdist-1.0.0.tar.gz", data, name="twosdist", version="1.0.0")
    assert_clear_error(r, 400)
    assert set(server.project_files("twosdist")) == existing
    server.assert_no_debris()


def test_missing_content_part_rejected(server, token, existing):
    r = server.http.post(
        server.upload_url,
        data={":action": "file_upload", "protocol_version": "1", "name": "nocontent", "version": "1.0",
              "filetype": "bdist_wheel", "pyversion": "py3", "metadata_version": "2.1"},
        files={"unrelated": ("x.txt", b"x")},
        auth=("__token__", token),
        timeout=30,
    )
    assert_clear_error(r, 400)
    assert_absent(server, "nocontent")


def test_metadata_mismatch_via_twine(server, clients, token, tmp_path):
    w = WheelBuilder("twinemismatch", "1.0", metadata_version_field="1.5").build(tmp_path)
    proc = clients.twine_upload(server, token, w, check=False)
    assert "400" in proc.output, clients.describe(proc)
    assert_absent(server, "twinemismatch")


def test_multipart_body_missing_its_end_rejected(server, token, existing):
    """Content-Length is honest, but the multipart body stops mid-file (no closing boundary)."""
    w = WheelBuilder("cutmultipart", "1.0").to_bytes()
    req = legacy_request(server.upload_url, token, "cutmultipart-1.0-py3-none-any.whl", w,
                         name="cutmultipart", version="1.0")
    cut = int(len(req.body) * 0.7)
    req.body = req.body[:cut]
    req.headers["Content-Length"] = str(cut)
    sock = send_partial(req, fraction=1.0)
    try:
        resp = read_http_response(sock)
    finally:
        sock.close()
    status_line = resp.split(b"\r\n", 1)[0].decode(errors="replace")
    assert status_line.startswith("HTTP/1.1 400"), f"expected 400, got {resp[:500]!r}"
    assert_absent(server, "cutmultipart")
    server.assert_no_debris()


def test_body_shorter_than_content_length_half_closed(server, token, existing):
    """The client promises more bytes than it sends and half-closes: a 400 or a silent
    close are both fine, but nothing may be stored."""
    w = WheelBuilder("shortbody", "1.0").to_bytes()
    req = legacy_request(server.upload_url, token, "shortbody-1.0-py3-none-any.whl", w,
                         name="shortbody", version="1.0")
    sock = send_partial(req, fraction=0.5)
    try:
        sock.shutdown(socket.SHUT_WR)
        resp = read_http_response(sock)
    finally:
        sock.close()
    if resp:
        status_line = resp.split(b"\r\n", 1)[0].decode(errors="replace")
        assert status_line.startswith("HTTP/1.1 4"), f"expected a 4xx or no answer, got {resp[:500]!r}"
    assert_absent(server, "shortbody")
    server.assert_no_debris()


def test_body_shorter_than_content_length_connection_dropped(server, token, existing):
    w = WheelBuilder("droppedbody", "1.0", payload=os.urandom(100_000), compress=False).to_bytes()
    req = legacy_request(server.upload_url, token, "droppedbody-1.0-py3-none-any.whl", w,
                         name="droppedbody", version="1.0")
    sock = send_partial(req, fraction=0.6)
    sock.close()
    assert_absent(server, "droppedbody")
    server.assert_no_debris()


def test_server_still_accepts_good_uploads(server, clients, token, tmp_path):
    w = WheelBuilder("aftermath", "1.0").build(tmp_path)
    clients.twine_upload(server, token, w)
    assert w.name in server.project_files("aftermath")
    server.assert_no_debris()


# ---- size limit: a server of its own ------------------------------------------------

LIMIT = 200_000


@pytest.fixture(scope="module")
def small_server(palisade_bin, tmp_path_factory):
    srv = Server(palisade_bin, tmp_path_factory.mktemp("srv-small"), "small-limit",
                 {"PALISADE_MAX_UPLOAD_BYTES": str(LIMIT)}).start()
    srv.create_user("big")
    srv.token = srv.create_token("big")
    yield srv
    srv.stop()


def test_oversized_file_gets_413(small_server, clients, tmp_path):
    big = WheelBuilder("bigwheel", "1.0", payload=os.urandom(LIMIT + 100_000), compress=False).build(tmp_path / "big")
    assert big.stat().st_size > LIMIT
    r = small_server.upload_raw(small_server.token, big.name, big.read_bytes(), name="bigwheel", version="1.0")
    assert_clear_error(r, 413)
    assert_absent(small_server, "bigwheel")

    proc = clients.twine_upload(small_server, small_server.token, big, check=False)
    assert "413" in proc.output, clients.describe(proc)
    assert_absent(small_server, "bigwheel")
    small_server.assert_no_debris()


def test_file_under_the_limit_is_accepted(small_server, clients, tmp_path):
    ok = WheelBuilder("smallwheel", "1.0", payload=os.urandom(LIMIT // 2), compress=False).build(tmp_path)
    assert ok.stat().st_size < LIMIT
    clients.twine_upload(small_server, small_server.token, ok)
    assert ok.name in small_server.project_files("smallwheel")
    small_server.assert_no_debris()
