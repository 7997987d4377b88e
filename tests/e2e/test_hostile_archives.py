"""Uploads of archives that mean one thing to a naive reader and another to the installer: the
two High findings of the hostile-input review and their class. Each is refused with a precise
4xx (by the archive checks, or by the scanner that now judges the file under the path it
extracts to) and leaves nothing behind; the same payload as a plain `setup.py` is the baseline."""

from __future__ import annotations

from pathlib import Path

import pytest

from archive_oracle import (PKG_INFO, STAGE2, data_in_a_folder, gz, gzip_carrying_a_wheel, pax_and_gnu_names, raw_member, tar_bytes,
                            undercounted_zip, zip_bytes)
from support import Server

USER = "archivist"


@pytest.fixture(scope="module")
def token(server):
    server.create_user(USER)
    return server.create_token(USER)


def pkg_info(name: str) -> bytes:
    return PKG_INFO.replace(b"Name: demo", f"Name: {name}".encode())


def sdist(name: str, members: list[tuple], end_marker: bool = True) -> bytes:
    root = f"{name}-1.0"
    full = [(f"{root}/PKG-INFO", "file", pkg_info(name))] + [(f"{root}/{m[0]}", *m[1:]) for m in members]
    return gz(tar_bytes(full, end_marker=end_marker))


def wheel(name: str, members: list[tuple[str, bytes]], **kw) -> bytes:
    di = f"{name}-1.0.dist-info"
    base = [(f"{di}/METADATA", pkg_info(name)), (f"{di}/WHEEL", b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
            (f"{di}/RECORD", b"")]
    return zip_bytes(base + members, **kw)


def upload(server: Server, token: str, filename: str, data: bytes, tmp_path: Path, clients=None):
    """Uploads with twine when given clients (what users run), else with a raw request."""
    name = filename.split("-")[0]
    if clients is not None:
        path = tmp_path / filename
        path.write_bytes(data)
        proc = clients.twine_upload(server, token, path, check=None)
        return proc.returncode, proc.stdout + proc.stderr
    r = server.upload_raw(token, filename, data, name=name, version="1.0")
    return r.status_code, r.text


def assert_refused(server: Server, outcome, *needles: str):
    code, text = outcome
    assert code not in (0, 200), f"accepted:\n{text}"
    if isinstance(code, int) and code >= 400:
        assert 400 <= code < 500, text
    low = text.lower()
    assert any(n.lower() in low for n in needles), f"none of {needles} in:\n{text}"
    server.assert_no_debris()


def assert_absent(server: Server, project: str):
    assert server.get(f"/pypi/{project}/json").status_code == 404
    assert server.get(f"/simple/{project}/").status_code == 404


def test_payload_as_a_plain_setup_py_is_refused(server, token, clients, tmp_path):
    data = sdist("linkbase", [("setup.py", "file", STAGE2)])
    assert_refused(server, upload(server, token, "linkbase-1.0.tar.gz", data, tmp_path, clients), "malicious")
    assert_absent(server, "linkbase")


@pytest.mark.parametrize("kind,target", [("symlink", "docs/notes.txt"), ("hardlink", "linked-1.0/docs/notes.txt")])
def test_setup_py_linked_to_a_payload_in_docs_is_refused(server, token, clients, tmp_path, kind, target):
    name = "linked" if kind == "symlink" else "hardlinked"
    target = target.replace("linked-", f"{name}-")
    data = sdist(name, [("docs/notes.txt", "file", STAGE2), ("setup.py", kind, target)])
    assert_refused(server, upload(server, token, f"{name}-1.0.tar.gz", data, tmp_path, clients), "malicious")
    assert_absent(server, name)


def test_regular_setup_py_then_a_link_of_the_same_name_is_refused(server, token, clients, tmp_path):
    data = sdist("relinked", [("docs/notes.txt", "file", STAGE2), ("setup.py", "file", b"from setuptools import setup\nsetup()\n"),
                              ("setup.py", "symlink", "docs/notes.txt")])
    assert_refused(server, upload(server, token, "relinked-1.0.tar.gz", data, tmp_path, clients), "more than once")
    assert_absent(server, "relinked")


def test_link_chain_climbing_out_of_the_sdist_is_refused(server, token, tmp_path):
    data = sdist("climber", [("up", "symlink", ".."), ("up2", "symlink", "up/.."), ("up3", "symlink", "up2/.."),
                             ("up3/escaped.txt", "file", b"x")])
    assert_refused(server, upload(server, token, "climber-1.0.tar.gz", data, tmp_path), "outside the archive")
    assert_absent(server, "climber")


def test_malicious_setup_py_in_a_second_gzip_member_is_refused(server, token, clients, tmp_path):
    first = tar_bytes([("twogz-1.0/PKG-INFO", "file", pkg_info("twogz")), ("twogz-1.0/setup.py", "file", b"print('hi')\n")],
                      end_marker=False)
    data = gz(first) + gz(tar_bytes([("twogz-1.0/setup.py", "file", STAGE2)]))
    assert_refused(server, upload(server, token, "twogz-1.0.tar.gz", data, tmp_path, clients), "more than once")
    assert_absent(server, "twogz")
    # A second member that only adds a module is read too, and the scanner sees it.
    first = tar_bytes([("twogzb-1.0/PKG-INFO", "file", pkg_info("twogzb")), ("twogzb-1.0/README", "file", b"hi\n")], end_marker=False)
    data = gz(first) + gz(tar_bytes([("twogzb-1.0/setup.py", "file", STAGE2)]))
    assert_refused(server, upload(server, token, "twogzb-1.0.tar.gz", data, tmp_path, clients), "malicious")
    assert_absent(server, "twogzb")


def test_archive_after_the_tar_end_marker_is_refused(server, token, tmp_path):
    data = sdist("afterend", []) + gz(tar_bytes([("afterend-1.0/setup.py", "file", STAGE2)]))
    assert_refused(server, upload(server, token, "afterend-1.0.tar.gz", data, tmp_path), "after the end of its tar archive")
    assert_absent(server, "afterend")


def test_pax_global_header_renaming_members_is_refused(server, token, tmp_path):
    import tarfile
    root = "paxglobal-1.0"
    data = gz(tar_bytes([(f"{root}/PKG-INFO", "file", pkg_info("paxglobal")), (f"{root}/notes.txt", "file", STAGE2)],
                        fmt=tarfile.PAX_FORMAT, global_pax={"path": f"{root}/setup.py"}))
    assert_refused(server, upload(server, token, "paxglobal-1.0.tar.gz", data, tmp_path), "pax global header")
    assert_absent(server, "paxglobal")


def test_wheel_pth_named_as_a_test_helper_in_the_central_directory_is_refused(server, token, tmp_path):
    data = wheel("hiddenpth", [("tests/helper_data_0001.py", STAGE2)],
                 local_names={"tests/helper_data_0001.py": "zzzzzzzzzzzz_hidden00.pth"})
    assert_refused(server, upload(server, token, "hiddenpth-1.0-py3-none-any.whl", data, tmp_path), "is also named")
    assert_absent(server, "hiddenpth")


def test_wheel_unicode_path_field_renaming_a_member_is_refused(server, token, tmp_path):
    data = wheel("unipath", [("unipath/__init__.py", b"")], unicode_paths={"unipath/__init__.py": "unipath/__INIT__.PY"})
    assert_refused(server, upload(server, token, "unipath-1.0-py3-none-any.whl", data, tmp_path), "is also named")
    assert_absent(server, "unipath")


def test_names_that_differ_only_in_case_are_refused(server, token, tmp_path):
    data = sdist("casey", [("setup.py", "file", b"print(1)\n"), ("SETUP.PY", "file", STAGE2)])
    assert_refused(server, upload(server, token, "casey-1.0.tar.gz", data, tmp_path), "differ only in case")
    assert_absent(server, "casey")


def test_wheel_dist_info_of_another_project_is_refused(server, token, tmp_path):
    di = "other_project-1.0.dist-info"
    data = zip_bytes([(f"{di}/METADATA", pkg_info("foreign")), (f"{di}/WHEEL", b"Wheel-Version: 1.0\n"), (f"{di}/RECORD", b""),
                      ("foreign/__init__.py", b"")])
    assert_refused(server, upload(server, token, "foreign-1.0-py3-none-any.whl", data, tmp_path), "metadata folder")
    assert_absent(server, "foreign")


def test_sdist_whose_only_folder_is_another_name_is_refused(server, token, tmp_path):
    data = gz(tar_bytes([("something_else-1.0/PKG-INFO", "file", pkg_info("misfiled"))]))
    assert_refused(server, upload(server, token, "misfiled-1.0.tar.gz", data, tmp_path), "top-level folder")
    assert_absent(server, "misfiled")


def test_links_inside_an_honest_sdist_still_upload(server, token, clients, tmp_path):
    """Projects that symlink a shared file inside their tree are not refused for it."""
    data = sdist("honestlink", [("LICENSE.txt", "file", b"MIT\n"), ("docs/LICENSE.txt", "symlink", "../LICENSE.txt"),
                                ("setup.py", "file", b"from setuptools import setup\nsetup()\n")])
    code, text = upload(server, token, "honestlink-1.0.tar.gz", data, tmp_path, clients)
    assert code == 0, text
    assert server.get("/pypi/honestlink/json").status_code == 200


# Found by the review of the fixes: header-level differentials between the tar crate and tarfile,
# and between the zip crate and zipfile.

@pytest.mark.parametrize("kind", ["folder", "symlink"])
def test_setup_py_hidden_as_the_data_of_a_folder_or_link_is_refused(server, token, tmp_path, kind):
    import tarfile
    name = f"hidden{kind}"
    root = f"{name}-1.0"
    typ = tarfile.DIRTYPE if kind == "folder" else tarfile.SYMTYPE
    raw = raw_member(f"{root}/PKG-INFO", pkg_info(name)) + raw_member(f"{root}/setup.py", b"print(1)\n")
    data = gz(raw + data_in_a_folder(root, STAGE2, typ) + b"\0" * 1024)
    assert_refused(server, upload(server, token, f"{name}-1.0.tar.gz", data, tmp_path), "skip differently")
    assert_absent(server, name)


def test_pax_path_and_gnu_long_name_naming_a_member_twice_is_refused(server, token, tmp_path):
    root = "paxgnu-1.0"
    data = gz(raw_member(f"{root}/PKG-INFO", pkg_info("paxgnu")) + pax_and_gnu_names(root, STAGE2) + b"\0" * 1024)
    assert_refused(server, upload(server, token, "paxgnu-1.0.tar.gz", data, tmp_path), "name the member differently")
    assert_absent(server, "paxgnu")


def test_wheel_whose_end_record_hides_a_pth_member_is_refused(server, token, tmp_path):
    di = "zcount-1.0.dist-info"
    data = undercounted_zip([(f"{di}/METADATA", pkg_info("zcount")), (f"{di}/WHEEL", b"Wheel-Version: 1.0\n"), (f"{di}/RECORD", b""),
                             ("zcount/__init__.py", b""), ("zcount_init.pth", STAGE2)])
    assert_refused(server, upload(server, token, "zcount-1.0-py3-none-any.whl", data, tmp_path), "end record")
    assert_absent(server, "zcount")


def test_gzip_stream_carrying_a_wheel_is_refused(server, token, tmp_path):
    di = "polyglot-1.0.dist-info"
    inner = zip_bytes([(f"{di}/METADATA", pkg_info("polyglot")), (f"{di}/WHEEL", b"Wheel-Version: 1.0\n"), (f"{di}/RECORD", b""),
                       ("evil.pth", STAGE2)])
    data = gzip_carrying_a_wheel(inner, "polyglot-1.0")
    assert_refused(server, upload(server, token, "polyglot-1.0-py3-none-any.whl", data, tmp_path), "zip member header")
    assert_absent(server, "polyglot")
