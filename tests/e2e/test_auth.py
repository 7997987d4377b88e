"""Who may upload: missing, invalid, revoked, expired and other-project tokens; users
without a role on an existing project; `role add` / `role remove` taking effect; login sessions
(refused: uploads take tokens); invalid tokens from a shared address not blocking valid ones."""

from __future__ import annotations

import base64
import re
import time

import pytest

from distbuilder import WheelBuilder
from support import eventually, legacy_request

PROJECT = "authproj"


@pytest.fixture(scope="module")
def setup(server, module_clients, tmp_path_factory):
    d = tmp_path_factory.mktemp("auth-dists")
    server.create_user("alice")
    server.create_user("bob")
    alice = server.create_token("alice")
    first = WheelBuilder(PROJECT, "1.0").build(d)
    module_clients.twine_upload(server, alice, first)
    return {"alice": alice, "dir": d, "first": first}


def upload(server, token, path, name=PROJECT, version=None, username="__token__"):
    version = version or path.name.split("-")[1]
    return server.upload_raw(token, path.name, path.read_bytes(), name=name, version=version, username=username)


def assert_project_files(server, expected: set[str], project: str = PROJECT):
    assert set(server.project_files(project)) == expected


def test_missing_credentials_get_401(server, setup, tmp_path):
    w = WheelBuilder(PROJECT, "1.1").build(tmp_path)
    r = upload(server, None, w)
    assert r.status_code == 401, f"{r.status_code}: {r.text}"
    assert r.text.strip(), "error body should explain the problem"
    assert_project_files(server, {setup["first"].name})


@pytest.mark.parametrize("bad", ["pal_" + "0" * 40, "pal_not-a-token", "garbage", "pal_"])
def test_invalid_token_gets_403(server, setup, tmp_path, bad):
    w = WheelBuilder(PROJECT, "1.1").build(tmp_path)
    r = upload(server, bad, w)
    assert r.status_code == 403, f"token {bad!r}: {r.status_code}: {r.text}"
    assert r.text.strip()
    assert_project_files(server, {setup["first"].name})


def test_tampered_token_gets_403(server, setup, tmp_path):
    w = WheelBuilder(PROJECT, "1.1").build(tmp_path)
    r = upload(server, setup["alice"][:-1] + ("A" if setup["alice"][-1] != "A" else "B"), w)
    assert r.status_code == 403, f"{r.status_code}: {r.text}"
    assert_project_files(server, {setup["first"].name})


def test_valid_token_via_twine_with_wrong_password_fails(server, clients, setup, tmp_path):
    w = WheelBuilder(PROJECT, "1.1").build(tmp_path)
    proc = clients.twine_upload(server, setup["alice"] + "x", w, check=False)
    assert "403" in proc.output, clients.describe(proc)
    assert_project_files(server, {setup["first"].name})


def _token_id(server, user: str) -> str:
    out = server.cli("token", "list", "--user", user).stdout
    rows = [ln for ln in out.splitlines() if re.search(rf"\b{user}\b", ln)]
    assert len(rows) == 1, f"expected exactly one token row for {user}:\n{out}"
    return rows[0].split()[0].strip("|")


def test_revoked_token_gets_403(server, setup):
    server.create_user("revokee")
    server.cli("role", "add", PROJECT, "revokee", "--role", "maintainer")
    token = server.create_token("revokee")
    first = setup["first"]
    # Before revocation an identical re-upload is a harmless 200 (retry: the role grant propagates).
    eventually(lambda: _expect_status(upload(server, token, first), 200))
    listed = server.cli("token", "list", "--user", "revokee").stdout
    assert token not in listed, "token list must not print the secret"
    server.cli("token", "revoke", _token_id(server, "revokee"))
    eventually(lambda: _expect_status(upload(server, token, first), 403))


def test_expired_token_gets_403(server, setup):
    server.create_user("shortlived")
    server.cli("role", "add", PROJECT, "shortlived", "--role", "maintainer")
    token = server.create_token("shortlived", expires="1s")
    time.sleep(2.5)
    r = upload(server, token, setup["first"])
    assert r.status_code == 403, f"expired token: {r.status_code}: {r.text}"


def test_token_scoped_to_other_project(server, clients, setup, tmp_path):
    other = WheelBuilder("otherproj", "1.0").build(tmp_path)
    clients.twine_upload(server, setup["alice"], other)
    scoped = server.create_token("alice", projects=["otherproj"])
    # works for its own project
    ok = WheelBuilder("otherproj", "1.1").build(tmp_path)
    eventually(lambda: _expect_status(upload(server, scoped, ok, name="otherproj"), 200))
    # refused for another project of the same user
    w = WheelBuilder(PROJECT, "1.2").build(tmp_path)
    r = upload(server, scoped, w)
    assert r.status_code == 403, f"{r.status_code}: {r.text}"
    # and refused for a brand-new project
    n = WheelBuilder("brandnew-scoped", "1.0").build(tmp_path)
    r = upload(server, scoped, n, name="brandnew-scoped")
    assert r.status_code == 403, f"{r.status_code}: {r.text}"
    assert server.project_files("brandnew-scoped") == {}
    assert_project_files(server, {setup["first"].name})


def test_token_scope_uses_normalized_names(server, clients, setup, tmp_path):
    first = WheelBuilder("scoped-norm", "1.0").build(tmp_path)
    clients.twine_upload(server, setup["alice"], first)
    scoped = server.create_token("alice", projects=["Scoped_Norm"])
    w = WheelBuilder("scoped-norm", "1.1").build(tmp_path)
    eventually(lambda: _expect_status(upload(server, scoped, w, name="scoped-norm"), 200))


def test_user_without_role_then_role_add_and_remove(server, clients, setup, tmp_path):
    bob = server.create_token("bob")
    w = WheelBuilder(PROJECT, "2.0").build(tmp_path)

    r = upload(server, bob, w)
    assert r.status_code == 403, f"bob has no role on {PROJECT}: {r.status_code}: {r.text}"
    proc = clients.twine_upload(server, bob, w, check=False)
    assert "403" in proc.output, clients.describe(proc)
    assert_project_files(server, {setup["first"].name})

    server.cli("role", "add", PROJECT, "bob", "--role", "maintainer")
    eventually(lambda: _expect_status(upload(server, bob, w), 200))
    assert w.name in server.project_files(PROJECT)

    server.cli("role", "remove", PROJECT, "bob")
    w2 = WheelBuilder(PROJECT, "2.1").build(tmp_path)
    # identical re-upload of bob's own file must now be refused too
    eventually(lambda: _expect_status(upload(server, bob, w), 403))
    r = upload(server, bob, w2)
    assert r.status_code == 403, f"{r.status_code}: {r.text}"
    assert w2.name not in server.project_files(PROJECT)


def test_user_can_create_own_new_project(server, clients, setup, tmp_path):
    server.create_user("carol")
    carol_tok = server.create_token("carol")
    w = WheelBuilder("carols-project", "0.1").build(tmp_path)
    clients.twine_upload(server, carol_tok, w)
    assert w.name in server.project_files("carols-project")
    # alice is not a member of carol's project
    w2 = WheelBuilder("carols-project", "0.2").build(tmp_path)
    r = upload(server, setup["alice"], w2, name="carols-project")
    assert r.status_code == 403, f"{r.status_code}: {r.text}"


def test_name_variant_of_foreign_project_is_refused(server, clients, setup, tmp_path):
    """`Team_Tool` is the project `team-tool`: bob may not slip into alice's project by
    spelling its name differently."""
    w = WheelBuilder("team-tool", "1.0").build(tmp_path / "a")
    clients.twine_upload(server, setup["alice"], w)
    server.create_user("dave")
    dave = server.create_token("dave")
    for spelling in ("Team_Tool", "team.tool", "TEAM-TOOL"):
        v = WheelBuilder(spelling, "2.0").build(tmp_path / spelling)
        r = server.upload_raw(dave, v.name, v.read_bytes(), name=spelling, version="2.0")
        assert r.status_code == 403, f"{spelling}: {r.status_code}: {r.text}"
    assert set(server.project_files("team-tool")) == {w.name}


def test_login_session_as_bearer_cannot_upload(server, setup, tmp_path):
    """Issue 12, item 13: a login session sent as `Authorization: Bearer palsess_...` could
    upload. Uploads take API tokens (or a trusted publisher's token) only."""
    session = server.accounts["alice"]["session"]
    for name, version in ((PROJECT, "1.7"), ("authproj-by-session", "1.0")):
        w = WheelBuilder(name, version).build(tmp_path)
        req = legacy_request(server.upload_url, None, w.name, w.read_bytes(), name=name, version=version)
        req.headers["Authorization"] = f"Bearer {session}"
        r = server.http.send(req, timeout=60, allow_redirects=False)
        assert r.status_code == 403, f"{r.status_code}: {r.text}"
        assert "a login session cannot upload: use an API token" in r.text, r.text
    assert server.project_files("authproj-by-session") == {}
    assert not [f for f in server.project_files(PROJECT) if "-1.7-" in f]
    # As the password of __token__ it is not a token either.
    r = upload(server, session, WheelBuilder(PROJECT, "1.7").build(tmp_path))
    assert r.status_code == 403, f"{r.status_code}: {r.text}"


def test_invalid_tokens_from_a_shared_address_do_not_block_valid_ones(make_server, clients, tmp_path):
    """Issue 12, item 10: invalid tokens are counted per client address and, beyond
    `token_max_failures`, answered 429; a valid token from the same address (a colleague behind
    the same NAT, or the attacker's own neighbour) still uploads."""
    srv = make_server({"PALISADE_ACCOUNTS_TOKEN_MAX_FAILURES": "5"})
    srv.create_user("natuser")
    token = srv.create_token("natuser")
    w = WheelBuilder("natproj", "1.0").build(tmp_path)
    statuses = [upload(srv, "pal_" + f"{i:038d}", w, name="natproj").status_code for i in range(8)]
    assert statuses == [403] * 5 + [429] * 3, statuses
    clients.twine_upload(srv, token, w)
    assert set(srv.project_files("natproj")) == {w.name}
    r = upload(srv, "pal_" + "9" * 38, WheelBuilder("natproj", "1.1").build(tmp_path), name="natproj")
    assert r.status_code == 429 and r.headers.get("Retry-After", "").isdigit(), f"{r.status_code}: {r.text}"


def test_tokens_never_logged(server, setup):
    log = server.log_text()
    assert len(server.issued_tokens) >= 5
    for tok in server.issued_tokens:
        assert tok not in log, "a token appears in the server log"
        assert tok[4:] not in log, "a token's secret part appears in the server log"
        basic = base64.b64encode(f"__token__:{tok}".encode()).decode()
        assert basic not in log, "an Authorization header appears in the server log"


def test_rejections_left_no_debris(server, setup):
    server.assert_no_debris()


def _expect_status(r, status):
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text}"
    return r
