"""Admin CLI against a running server: project list/show, token list, yank/unyank of a
release and of one file, remove-file (404 afterwards, filename reserved forever)."""

from __future__ import annotations

import pytest

from distbuilder import SdistBuilder, WheelBuilder
from support import JSON_V1, eventually

PROJECT = "adminproj"
USER = "admin-owner"


@pytest.fixture(scope="module")
def setup(server, module_clients, tmp_path_factory):
    d = tmp_path_factory.mktemp("admin-dists")
    server.create_user(USER)
    token = server.create_token(USER)
    built = {
        "w1": WheelBuilder(PROJECT, "1.0").build(d),
        "s1": SdistBuilder(PROJECT, "1.0").build(d),
        "w2": WheelBuilder(PROJECT, "2.0").build(d),
        "s2": SdistBuilder(PROJECT, "2.0").build(d),
        "w3": WheelBuilder(PROJECT, "3.0").build(d),
    }
    module_clients.twine_upload(server, token, *built.values())
    return {"token": token, **built}


def yanked_state(server, filename):
    return server.project_files(PROJECT)[filename].get("yanked", False)


def test_project_list_and_show(server, setup):
    out = server.cli("project", "list").stdout
    assert PROJECT in out, out
    show = server.cli("project", "show", PROJECT).stdout
    assert PROJECT in show
    for version in ("1.0", "2.0", "3.0"):
        assert version in show, f"`project show` should list release {version}:\n{show}"
    assert USER in show, f"`project show` should name the owner:\n{show}"


def test_project_show_unknown_fails(server, setup):
    proc = server.cli("project", "show", "no-such-project", check=False)
    assert proc.returncode != 0, proc.stdout
    assert proc.stderr.strip(), "a failing command should say why on stderr"


def test_token_for_unknown_user_fails(server, setup):
    proc = server.cli("token", "create", "--user", "nobody-here", check=False)
    assert proc.returncode != 0
    assert "pal_" not in proc.stdout


def test_token_list_does_not_show_secrets(server, setup):
    out = server.cli("token", "list", "--user", USER).stdout
    assert USER in out, out
    assert setup["token"] not in out
    assert setup["token"][4:] not in out


def test_yank_and_unyank_release(server, setup):
    w2, s2 = setup["w2"].name, setup["s2"].name
    server.cli("yank", PROJECT, "2.0", "--reason", "security hole")

    def yanked():
        assert yanked_state(server, w2) == "security hole"
        assert yanked_state(server, s2) == "security hole"
        assert yanked_state(server, setup["w1"].name) is False
        assert yanked_state(server, setup["w3"].name) is False

    eventually(yanked)
    # PyPI JSON API agrees
    info = server.get(f"/pypi/{PROJECT}/2.0/json").json()["info"]
    assert info["yanked"] is True and info["yanked_reason"] == "security hole"
    # still downloadable
    f = server.project_files(PROJECT)[w2]
    assert server.download(f) == setup["w2"].read_bytes()

    server.cli("unyank", PROJECT, "2.0")

    def unyanked():
        assert yanked_state(server, w2) is False
        assert yanked_state(server, s2) is False

    eventually(unyanked)
    info = server.get(f"/pypi/{PROJECT}/2.0/json").json()["info"]
    assert info["yanked"] is False


def test_yank_single_file(server, setup):
    s1, w1 = setup["s1"].name, setup["w1"].name
    server.cli("yank", PROJECT, "1.0", s1, "--reason", "bad sdist")

    def yanked():
        assert yanked_state(server, s1) == "bad sdist"
        assert yanked_state(server, w1) is False

    eventually(yanked)
    html = server.get(f"/simple/{PROJECT}/", headers={"Accept": "text/html"}).text
    line = [ln for ln in html.split("<a ")[1:] if s1 in ln][0]
    assert 'data-yanked="bad sdist"' in line, line

    server.cli("unyank", PROJECT, "1.0", s1)
    eventually(lambda: _assert(yanked_state(server, s1) is False))


def test_yank_changes_etag_and_serial_and_reason_is_escaped(server, setup):
    w1 = setup["w1"].name
    before = server.get(f"/simple/{PROJECT}/", headers={"Accept": JSON_V1})
    etag, serial = before.headers["etag"], int(before.headers["x-pypi-last-serial"])
    reason = '"><script>alert(1)</script>&'
    server.cli("yank", PROJECT, "1.0", w1, "--reason", reason)

    def changed():
        r = server.get(f"/simple/{PROJECT}/", headers={"Accept": JSON_V1, "If-None-Match": etag})
        assert r.status_code == 200, "the old ETag still validates after a yank"
        assert int(r.headers["x-pypi-last-serial"]) > serial
        assert {f["filename"]: f for f in r.json()["files"]}[w1]["yanked"] == reason

    eventually(changed)
    html = server.get(f"/simple/{PROJECT}/", headers={"Accept": "text/html"}).text
    assert "<script>" not in html, "yank reason is not HTML-escaped"
    server.cli("unyank", PROJECT, "1.0", w1)
    eventually(lambda: _assert(yanked_state(server, w1) is False))


def test_yank_unknown_version_fails(server, setup):
    proc = server.cli("yank", PROJECT, "9.9", "--reason", "x", check=False)
    assert proc.returncode != 0


def test_remove_file_then_name_is_reserved(server, clients, setup):
    w3 = setup["w3"]
    f = server.project_files(PROJECT)[w3.name]
    url = server.file_url(f, server.url + f"/simple/{PROJECT}/")
    assert server.get(url).status_code == 200

    server.cli("remove-file", w3.name)

    def gone():
        assert w3.name not in server.project_files(PROJECT)
        assert server.get(url).status_code == 404
        assert server.get(url + ".metadata").status_code == 404
        html = server.get(f"/simple/{PROJECT}/", headers={"Accept": "text/html"}).text
        assert w3.name not in html

    eventually(gone)
    # same bytes again: refused, the name is burnt
    r = server.upload_raw(setup["token"], w3.name, w3.read_bytes(), name=PROJECT, version="3.0")
    assert r.status_code == 400, f"{r.status_code}: {r.text}"
    assert r.text.startswith("File already exists"), r.text
    proc = clients.twine_upload(server, setup["token"], w3, check=False)
    assert "File already exists" in proc.output, clients.describe(proc)
    proc = clients.twine_upload(server, setup["token"], w3, skip_existing=True)
    assert w3.name not in server.project_files(PROJECT)
    assert server.get(url).status_code == 404
    # the blob went with it
    server.assert_no_debris()


def test_project_list_json_after_admin_changes(server, setup):
    r = server.get("/simple/", headers={"Accept": JSON_V1})
    assert PROJECT in {p["name"] for p in r.json()["projects"]}


def _assert(cond):
    assert cond


def test_cli_changes_are_recorded_as_the_apis_are(server, setup):
    """The CLI goes through the same operations as the API: each change writes the same security
    event (the CLI once wrote its own, and some changes none), naming the operator."""
    import json

    server.cli("project", "status", PROJECT, "deprecated", "--reason", "use adminproj2")
    server.cli("yank", PROJECT, "2.0", "--reason", "broken")
    server.cli("unyank", PROJECT, "2.0")
    events = [json.loads(line) for line in server.cli("audit", "--project", PROJECT, "--json").stdout.splitlines()]
    by_kind = {}
    for e in events:
        by_kind.setdefault(e["kind"], e)
    for kind in ("project_status_changed", "release_yanked", "release_unyanked"):
        assert kind in by_kind, f"no {kind} event: {[e['kind'] for e in events]}"
        assert by_kind[kind]["actor"].startswith("admin-cli ("), by_kind[kind]
    assert by_kind["project_status_changed"]["details"] == {"status": "deprecated", "reason": "use adminproj2"}
    assert by_kind["release_yanked"]["details"]["reason"] == "broken"
    server.cli("project", "status", PROJECT, "active")
    assert server.simple_json(PROJECT).json()["project-status"]["status"] == "active"
