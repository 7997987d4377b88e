"""Trusted publishing: PyPI's OIDC token exchange (`POST /_/oidc/mint-token`) against local
issuers that sign GitHub-Actions-style ID tokens, then uploads with the minted token.

The module's server trusts three local issuers only by configuration: `gh` as its GitHub issuer
and `ci` (RS256) as a custom issuer; `rogue` is a third one it was never told about. Every
refusal is a 422 with PyPI's error code in `errors[0].code`, and each refusal test first shows
that the same token with the offending claim fixed *is* accepted, so the failure names its cause.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import subprocess
import time
import uuid
from types import SimpleNamespace

import pytest

from distbuilder import WheelBuilder, normalize
from oidc_issuer import Issuer
from support import Server, free_port, isolated_env

AUDIENCE = "palisade"  # the server's default [oidc] audience
LEEWAY = 60  # the server's default [oidc] leeway_secs
REFETCH_AFTER = 30  # oidc.rs: an unknown kid refetches the JWKS at most once per 30 s
TOKEN_RE = re.compile(r"^pal_[0-9A-Za-z]{38}$")


# ---- issuers and servers ------------------------------------------------------------------


@pytest.fixture(scope="module")
def issuers():
    gh, ci, rogue = Issuer("ES256", "gh"), Issuer("RS256", "ci"), Issuer("ES256", "rogue")
    yield SimpleNamespace(gh=gh, ci=ci, rogue=rogue)
    for i in (gh, ci, rogue):
        i.close()


def oidc_env(issuers, **extra: str) -> dict[str, str]:
    env = {
        "PALISADE_OIDC_GITHUB_ISSUER": issuers.gh.url,
        "PALISADE_OIDC_TRUSTED_ISSUERS": issuers.ci.url,
        "PALISADE_OIDC_ALLOW_INSECURE_LOOPBACK": "true",
        # Every refused exchange counts against the client address (token_max_failures per
        # window; valid exchanges are never refused for it); this module refuses ~20 on purpose.
        "PALISADE_ACCOUNTS_TOKEN_MAX_FAILURES": "200",
    }
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def tp(palisade_bin, tmp_path_factory, issuers):
    srv = Server(palisade_bin, tmp_path_factory.mktemp("srv-trusted-publishing"), "trusted-publishing", oidc_env(issuers))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def owner(tp):
    """The user who owns the module's projects, with an API token and a login session."""
    acct = tp.create_user("owner")
    return SimpleNamespace(name="owner", token=tp.create_token("owner"), session=acct["session"])


# ---- helpers --------------------------------------------------------------------------------


def github_claims(issuer: Issuer, repo: str, workflow: str = "release.yml", **changes) -> dict:
    """The claims GitHub Actions puts in an ID token for a push to main of `repo` ("OWNER/NAME").
    `changes` override claims; a value of None removes the claim."""
    owner = repo.split("/")[0]
    now = int(time.time())
    workflow_ref = f"{repo}/.github/workflows/{workflow}@refs/heads/main"
    claims = {
        "iss": issuer.url,
        "aud": AUDIENCE,
        "sub": f"repo:{repo}:ref:refs/heads/main",
        "repository": repo,
        "repository_owner": owner,
        "repository_owner_id": "1001",
        "repository_id": "2002",
        "repository_visibility": "public",
        "actor": "octocat",
        "actor_id": "583231",
        "workflow": "Release",
        "workflow_ref": workflow_ref,
        "workflow_sha": secrets.token_hex(20),
        "job_workflow_ref": workflow_ref,
        "job_workflow_sha": secrets.token_hex(20),
        "event_name": "push",
        "ref": "refs/heads/main",
        "ref_type": "branch",
        "ref_protected": "true",
        "sha": secrets.token_hex(20),
        "run_id": str(secrets.randbelow(10**10)),
        "run_number": "7",
        "run_attempt": "1",
        "runner_environment": "github-hosted",
        "jti": str(uuid.uuid4()),
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def hs256(claims: dict, secret: bytes, kid: str) -> str:
    """An HMAC-signed JWS, built by hand (PyJWT refuses key material that looks like a JWK)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode()) + "." + b64(json.dumps(claims).encode())
    return signing_input + "." + b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())


def mint(server: Server, id_token: str):
    return server.api("POST", "/_/oidc/mint-token", json={"token": id_token})


def minted(server: Server, id_token: str) -> str:
    """Exchanges an ID token that must be accepted; returns the upload token."""
    r = mint(server, id_token)
    assert r.status_code == 200, f"exchange refused: {r.status_code} {r.text}"
    body = r.json()
    assert body.get("success") is True, body
    token = body.get("token", "")
    assert TOKEN_RE.fullmatch(token), "the minted token is not pal_ followed by 38 letters and digits"
    server.issued_tokens.append(token)
    return token


def assert_refused(r, code: str, *fragments: str) -> dict:
    """A 422 PyPI-style failure with `code`, whose description mentions each fragment."""
    assert r.status_code == 422, f"expected 422 {code}, got {r.status_code}: {r.text}"
    body = r.json()
    assert body.get("message") == "Token request failed", body
    assert body["errors"][0]["code"] == code, f"expected {code}: {body}"
    description = body["errors"][0]["description"]
    for f in fragments:
        assert f.lower() in description.lower(), f"{f!r} not in the description {description!r}"
    assert "token" not in body or body["token"] is None, "a refused exchange must not hand out a token"
    return body


def make_project(server: Server, owner, name: str, tmp_path) -> None:
    """An existing project of `owner` (version 1.0 uploaded with the owner's normal token)."""
    w = WheelBuilder(name, "1.0").build(tmp_path)
    r = server.upload_raw(owner.token, w.name, w.read_bytes(), name=name, version="1.0")
    assert r.status_code == 200, f"first upload of {name}: {r.status_code} {r.text}"


def add_github_publisher(server: Server, project: str, repo: str, workflow: str = "release.yml", *extra: str) -> str:
    proc = server.cli("publisher", "add", project, "--github", repo, "--workflow", workflow, *extra)
    return proc.stdout


def upload(server: Server, token: str, project: str, version: str, tmp_path):
    w = WheelBuilder(project, version).build(tmp_path)
    return w, server.upload_raw(token, w.name, w.read_bytes(), name=project, version=version)


def audit(server: Server, project: str) -> list[dict]:
    out = server.cli("audit", "--project", project, "--json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture
def gh_project(tp, owner, issuers, tmp_path, request):
    """A fresh project owned by `owner` with a GitHub publisher for a repository of its own."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower().removeprefix("test_"))[:30].strip("-")
    project = f"tp-{slug}"
    repo = f"org-{slug}/repo-{slug}"
    make_project(tp, owner, project, tmp_path)
    add_github_publisher(tp, project, repo)
    return SimpleNamespace(project=project, repo=repo, claims=lambda **c: github_claims(issuers.gh, repo, **c))


# ---- the exchange accepts, and the token uploads ------------------------------------------------


def test_audience_endpoint_names_the_default_audience(tp):
    r = tp.get("/_/oidc/audience")
    assert r.status_code == 200, r.text
    assert r.json() == {"audience": AUDIENCE}


def test_twine_uploads_with_a_minted_token(tp, owner, issuers, clients, tmp_path):
    project, repo = "tp-widget", "octo-org/widget"
    make_project(tp, owner, project, tmp_path)
    make_project(tp, owner, "tp-bystander", tmp_path)
    out = add_github_publisher(tp, project, repo, "release.yml")
    assert "github octo-org/widget workflow release.yml" in out, out
    assert "pending" not in out, out

    before = time.time()
    r = mint(tp, issuers.gh.sign(github_claims(issuers.gh, repo)))
    assert r.status_code == 200, f"{r.status_code} {r.text}"
    body = r.json()
    assert body["success"] is True
    assert TOKEN_RE.fullmatch(body["token"]), "the minted token is not pal_ followed by 38 letters and digits"
    token = body["token"]
    tp.issued_tokens.append(token)
    assert isinstance(body["expires"], int)
    assert before < body["expires"] <= time.time() + 900 + 1, f"expires {body['expires']} is not within 900 s of now"

    wheel = WheelBuilder(project, "2.0").build(tmp_path)
    clients.twine_upload(tp, token, wheel)
    assert wheel.name in tp.project_files(project)

    # Upload only, and only to the publisher's project.
    other, r = upload(tp, token, "tp-bystander", "2.0", tmp_path)
    assert r.status_code == 403, f"upload to another project: {r.status_code} {r.text}"
    assert other.name not in tp.project_files("tp-bystander")
    _, r = upload(tp, token, "tp-brand-new-by-publisher", "1.0", tmp_path)
    assert r.status_code == 403, f"new project: {r.status_code} {r.text}"
    assert tp.project_files("tp-brand-new-by-publisher") == {}
    for method, path, kw in [
        ("GET", f"/api/projects/{project}/roles", {}),
        ("PUT", f"/api/projects/{project}/roles/owner", {"json": {"role": "maintainer"}}),
        ("GET", f"/api/projects/{project}/publishers", {}),
        ("POST", f"/api/projects/{project}/publishers", {"json": {"github": {"repository": "evil/repo", "workflow": "x.yml"}}}),
        ("POST", f"/api/projects/{project}/releases/2.0/yank", {"json": {}}),
        ("DELETE", f"/api/projects/{project}/files/{wheel.name}", {}),
        ("GET", f"/api/projects/{project}/events", {}),
    ]:
        r = tp.api(method, path, token, **kw)
        assert r.status_code == 403, f"{method} {path} with a publisher token: {r.status_code} {r.text}"
    assert wheel.name in tp.project_files(project)
    r = tp.api("GET", f"/api/projects/{project}/publishers", owner.session)
    assert r.status_code == 200 and len(r.json()["publishers"]) == 1, r.text


def test_expired_within_leeway_and_audience_list_are_accepted(tp, gh_project, issuers):
    now = int(time.time())
    minted(tp, issuers.gh.sign(gh_project.claims(exp=now - LEEWAY // 2, iat=now - 330, nbf=now - 330)))
    minted(tp, issuers.gh.sign(gh_project.claims(aud=["sigstore", AUDIENCE])))


# ---- the ID token itself is refused: invalid-token -----------------------------------------------


def test_wrong_audience(tp, gh_project, issuers):
    assert_refused(mint(tp, issuers.gh.sign(gh_project.claims(aud="pypi"))), "invalid-token", "audience")
    assert_refused(mint(tp, issuers.gh.sign(gh_project.claims(aud=["pypi", "sigstore"]))), "invalid-token", "audience")
    assert_refused(mint(tp, issuers.gh.sign(gh_project.claims(aud=None))), "invalid-token", "aud")
    minted(tp, issuers.gh.sign(gh_project.claims()))


def test_expired(tp, gh_project, issuers):
    now = int(time.time())
    old = dict(iat=now - 900, nbf=now - 900)
    assert_refused(mint(tp, issuers.gh.sign(gh_project.claims(exp=now - LEEWAY - 60, **old))), "invalid-token", "expired")
    assert_refused(mint(tp, issuers.gh.sign(gh_project.claims(exp=None))), "invalid-token", "exp")
    minted(tp, issuers.gh.sign(gh_project.claims(exp=now + 300, **old)))


def test_not_yet_valid(tp, gh_project, issuers):
    now = int(time.time())
    r = mint(tp, issuers.gh.sign(gh_project.claims(nbf=now + LEEWAY + 240, exp=now + 900)))
    assert_refused(r, "invalid-token", "not valid yet")
    minted(tp, issuers.gh.sign(gh_project.claims(nbf=now, exp=now + 900)))


def test_issued_in_the_future(tp, gh_project, issuers):
    now = int(time.time())
    r = mint(tp, issuers.gh.sign(gh_project.claims(iat=now + LEEWAY + 240, nbf=now, exp=now + 900)))
    assert_refused(r, "invalid-token", "issued in the future")
    assert_refused(mint(tp, issuers.gh.sign(gh_project.claims(iat=None))), "invalid-token", "iat")
    minted(tp, issuers.gh.sign(gh_project.claims(iat=now, nbf=now, exp=now + 900)))


def test_bad_signature_under_a_published_kid(tp, gh_project, issuers):
    gh = issuers.gh
    forged = gh.sign(gh_project.claims(), kid=gh.kid, key=gh.unpublished_key())
    assert_refused(mint(tp, forged), "invalid-token", "signature")
    # A signature transplanted from another genuine token does not verify either.
    genuine = gh.sign(gh_project.claims(repository_id="2002"))
    header, payload, _ = forged.split(".")
    assert_refused(mint(tp, f"{header}.{payload}.{genuine.split('.')[2]}"), "invalid-token", "signature")
    minted(tp, gh.sign(gh_project.claims()))


def test_unsupported_algorithms_are_refused(tp, gh_project, issuers):
    import jwt as pyjwt

    claims = gh_project.claims()
    unsigned = pyjwt.encode(claims, None, algorithm="none", headers={"kid": issuers.gh.kid})
    assert_refused(mint(tp, unsigned), "invalid-token", "none")
    # HS256 "signed" with the published public key as the shared secret (the classic confusion).
    secret = json.dumps(issuers.gh.jwks()["keys"][0]).encode()
    assert_refused(mint(tp, hs256(claims, secret, issuers.gh.kid)), "invalid-token", "HS256")
    assert_refused(mint(tp, "not.a.jwt"), "invalid-token", "malformed")


def test_issuer_not_trusted(tp, gh_project, issuers):
    rogue = issuers.rogue
    token = rogue.sign(github_claims(rogue, gh_project.repo))
    assert_refused(mint(tp, token), "invalid-token", "not trusted", rogue.url)
    assert rogue.total_requests == 0, f"the server contacted an untrusted issuer: {dict(rogue.requests)}"
    # Claiming a trusted issuer while signing with the rogue key fails on the signature instead.
    spoof = rogue.sign(gh_project.claims(), kid=issuers.gh.kid, key=rogue.private_key())
    assert_refused(mint(tp, spoof), "invalid-token", "signature")


def test_unknown_key_id_refetches_the_jwks(tp, gh_project, issuers):
    gh = issuers.gh
    minted(tp, gh.sign(gh_project.claims()))  # the keys are cached now
    # An unknown kid triggers a refetch only once the cached set is REFETCH_AFTER seconds old.
    wait = REFETCH_AFTER + 1 - gh.seconds_since_jwks_fetch()
    if wait > 0:
        time.sleep(wait)

    # Key rotation: the issuer publishes a new key; tokens signed with it name a kid the server
    # has not seen. A kid the issuer never published is refused after the refetch ...
    new_kid = gh.add_key()
    fetches = gh.jwks_requests
    unknown = gh.sign(gh_project.claims(), kid="never-published", key=gh.unpublished_key())
    assert_refused(mint(tp, unknown), "invalid-token", "never-published")
    assert gh.jwks_requests == fetches + 1, "the server should fetch the JWKS again for an unknown kid"
    # ... and the refetched set has the rotated key, so its tokens verify with no further fetch.
    minted(tp, gh.sign(gh_project.claims(), kid=new_kid))
    assert gh.jwks_requests == fetches + 1
    # Unknown kids do not make the server hammer the issuer: within REFETCH_AFTER, no refetch.
    again = gh.sign(gh_project.claims(), kid="never-published-2", key=gh.unpublished_key())
    assert_refused(mint(tp, again), "invalid-token", "never-published-2")
    assert gh.jwks_requests == fetches + 1, "an unknown kid refetched the JWKS within the refetch interval"
    # The old key still verifies.
    minted(tp, gh.sign(gh_project.claims(), kid=gh.kid))


# ---- replay: invalid-reuse-token ---------------------------------------------------------------


def test_replayed_jti(tp, gh_project, issuers, tmp_path):
    claims = gh_project.claims()
    token = issuers.gh.sign(claims)
    first = minted(tp, token)
    assert_refused(mint(tp, token), "invalid-reuse-token", "jti")
    # A different token (other sha and run) that reuses the jti is a replay as well.
    assert_refused(mint(tp, issuers.gh.sign(gh_project.claims(jti=claims["jti"]))), "invalid-reuse-token")
    assert_refused(mint(tp, issuers.gh.sign(gh_project.claims(jti=None))), "invalid-token", "jti")
    # The first exchange's token still works.
    w, r = upload(tp, first, gh_project.project, "1.1", tmp_path)
    assert r.status_code == 200, f"{r.status_code} {r.text}"


# ---- claims that do not match the publisher: invalid-publisher -----------------------------------


def test_wrong_workflow(tp, gh_project, issuers):
    r = mint(tp, issuers.gh.sign(gh_project.claims(workflow="other.yml")))
    assert_refused(r, "invalid-publisher", "job_workflow_ref")
    # The file name is matched exactly.
    r = mint(tp, issuers.gh.sign(gh_project.claims(workflow="Release.yml")))
    assert_refused(r, "invalid-publisher", "job_workflow_ref")
    # A reusable workflow of another repository is not this repository's workflow.
    ref = "someone/else/.github/workflows/release.yml@refs/heads/main"
    assert_refused(mint(tp, issuers.gh.sign(gh_project.claims(job_workflow_ref=ref))), "invalid-publisher", "job_workflow_ref")
    minted(tp, issuers.gh.sign(gh_project.claims(workflow="release.yml")))


def test_wrong_repository(tp, gh_project, issuers):
    owner = gh_project.repo.split("/")[0]
    other = f"{owner}/not-the-repo"
    r = mint(tp, issuers.gh.sign(github_claims(issuers.gh, other)))
    assert_refused(r, "invalid-publisher", "repository")
    # The repository claim is what counts, even when job_workflow_ref is the registered one.
    r = mint(tp, issuers.gh.sign(gh_project.claims(repository=other)))
    assert_refused(r, "invalid-publisher", "repository")
    # Owner and repository names match in any case, as on GitHub.
    minted(tp, issuers.gh.sign(github_claims(issuers.gh, gh_project.repo.upper())))


def test_environment_required_by_the_publisher(tp, owner, issuers, tmp_path):
    project, repo = "tp-envproj", "env-org/env-repo"
    make_project(tp, owner, project, tmp_path)
    out = add_github_publisher(tp, project, repo, "release.yml", "--environment", "release")
    assert "environment release" in out, out
    claims = lambda **c: github_claims(issuers.gh, repo, **c)  # noqa: E731
    assert_refused(mint(tp, issuers.gh.sign(claims(environment="staging"))), "invalid-publisher", "environment")
    assert_refused(mint(tp, issuers.gh.sign(claims())), "invalid-publisher", "environment")
    minted(tp, issuers.gh.sign(claims(environment="Release")))  # environments are case-insensitive


def test_ids_bound_on_first_use(tp, owner, gh_project, issuers):
    r = tp.api("GET", f"/api/projects/{gh_project.project}/publishers", owner.session)
    assert r.status_code == 200, r.text
    (pub,) = r.json()["publishers"]
    assert pub["spec"]["owner_id"] is None and pub["spec"]["repository_id"] is None, pub

    minted(tp, issuers.gh.sign(gh_project.claims(repository_owner_id="5001", repository_id="6001")))
    r = tp.api("GET", f"/api/projects/{gh_project.project}/publishers", owner.session)
    (pub,) = r.json()["publishers"]
    assert (pub["spec"]["owner_id"], pub["spec"]["repository_id"]) == ("5001", "6001"), pub

    # Same names, another account or repository (deleted and re-created): refused.
    r = mint(tp, issuers.gh.sign(gh_project.claims(repository_owner_id="9999", repository_id="6001")))
    assert_refused(r, "invalid-publisher", "repository_owner_id", "5001")
    r = mint(tp, issuers.gh.sign(gh_project.claims(repository_owner_id="5001", repository_id="6666")))
    assert_refused(r, "invalid-publisher", "repository_id", "6001")
    minted(tp, issuers.gh.sign(gh_project.claims(repository_owner_id="5001", repository_id="6001")))


def test_pull_request_target_is_refused(tp, gh_project, issuers):
    r = mint(tp, issuers.gh.sign(gh_project.claims(event_name="pull_request_target")))
    assert_refused(r, "invalid-publisher", "pull_request_target")
    for event in ("release", "workflow_dispatch"):
        minted(tp, issuers.gh.sign(gh_project.claims(event_name=event)))


def test_malformed_body(tp):
    for body in [b"", b"not json", b"[]", b"{}", b'{"token": 5}', b'{"token": null}', b'{"jwt": "a.b.c"}',
                 json.dumps({"token": "a" * 20000}).encode()]:
        r = tp.api("POST", "/_/oidc/mint-token", data=body, headers={"Content-Type": "application/json"})
        assert_refused(r, "invalid-payload")


# ---- custom issuer ----------------------------------------------------------------------------


def test_custom_issuer_publisher(tp, owner, issuers, tmp_path):
    ci = issuers.ci
    project = "tp-custom"
    make_project(tp, owner, project, tmp_path)
    sub = "pipeline:acme/widget:ref:main"
    out = tp.cli("publisher", "add", project, "--issuer", ci.url, "--claim", f"sub={sub}", "--claim", "project=acme-widget").stdout
    assert f"issuer {ci.url}" in out, out

    now = int(time.time())

    def claims(**c):
        base = {"iss": ci.url, "aud": AUDIENCE, "sub": sub, "project": "acme-widget", "pipeline_id": "42",
                "jti": str(uuid.uuid4()), "iat": now, "nbf": now, "exp": now + 300}
        base.update(c)
        return {k: v for k, v in base.items() if v is not None}

    token = minted(tp, ci.sign(claims()))
    w, r = upload(tp, token, project, "2.0", tmp_path)
    assert r.status_code == 200, f"{r.status_code} {r.text}"
    assert w.name in tp.project_files(project)

    # A custom publisher's claims are someone else's policy: a refusal does not reveal them.
    for bad in (claims(project="acme-other"), claims(sub="pipeline:acme/widget:ref:evil"), claims(project=None)):
        body = assert_refused(mint(tp, ci.sign(bad)), "invalid-publisher")
        assert "acme-widget" not in json.dumps(body) and "pipeline:acme/widget" not in json.dumps(body), body
    # A GitHub-shaped token from the custom issuer does not match the custom policy.
    assert_refused(mint(tp, ci.sign(github_claims(ci, "acme/widget"))), "invalid-publisher")

    # Publishers are only accepted for issuers the administrator trusts, with enough claims.
    proc = tp.cli("publisher", "add", project, "--issuer", issuers.rogue.url, "--claim", f"sub={sub}", check=False)
    assert proc.returncode != 0 and "not trusted" in proc.stderr, proc.stderr
    proc = tp.cli("publisher", "add", project, "--issuer", ci.url, "--claim", "project=acme-widget", check=False)
    assert proc.returncode != 0 and "sub" in proc.stderr, proc.stderr


# ---- the security event log and the server log ----------------------------------------------------


def test_audit_log_records_the_exchange_and_the_upload(tp, gh_project, issuers, tmp_path):
    token = minted(tp, issuers.gh.sign(gh_project.claims()))
    w, r = upload(tp, token, gh_project.project, "3.0", tmp_path)
    assert r.status_code == 200, f"{r.status_code} {r.text}"

    events = audit(tp, gh_project.project)
    mints = [e for e in events if e["kind"] == "publisher_token_minted"]
    assert mints, f"no publisher_token_minted event: {[e['kind'] for e in events]}"
    m = mints[0]
    assert m["actor"].startswith("publisher:"), m
    assert m["details"]["repository"] == gh_project.repo and m["details"]["issuer"] == issuers.gh.url, m
    uploads = [e for e in events if e["kind"] == "file_uploaded" and e["details"].get("filename") == w.name]
    assert len(uploads) == 1, f"no file_uploaded event for {w.name}: {events}"
    assert uploads[0]["actor"] == m["actor"], (uploads[0], m)
    assert uploads[0]["details"]["token_id"] == m["details"]["token_id"], (uploads[0], m)
    text = json.dumps(events)
    assert token not in text, "the audit log contains a minted token"


def test_minted_tokens_and_id_tokens_never_reach_the_server_log(tp, gh_project, issuers, tmp_path):
    id_token = issuers.gh.sign(gh_project.claims())
    token = minted(tp, id_token)
    _, r = upload(tp, token, gh_project.project, "4.0", tmp_path)
    assert r.status_code == 200, f"{r.status_code} {r.text}"
    refused = issuers.gh.sign(gh_project.claims(aud="pypi"))
    assert_refused(mint(tp, refused), "invalid-token")
    log = tp.log_text()
    assert "trusted publisher token minted" in log, "the exchange should be logged (without the token)"
    leaked = [t[:8] + "..." for t in tp.issued_tokens if t[4:] in log]
    assert not leaked, f"{len(leaked)} API tokens appear in the server log"
    for jwt_text in (id_token, refused):
        assert jwt_text.split(".")[2] not in log and jwt_text.split(".")[1] not in log, "an ID token appears in the server log"


# ---- servers of their own -------------------------------------------------------------------------


def test_pending_publisher_creates_the_project(make_server, issuers, clients, tmp_path):
    srv = make_server(extra_env=oidc_env(issuers))
    srv.create_user("founder")
    project, repo = "tp-newproj", "founder-org/newproj"
    proc = srv.cli("publisher", "add", project, "--github", repo, "--workflow", "release.yml", "--owner", "founder")
    assert "(pending)" in proc.stdout, proc.stdout
    listed = srv.cli("publisher", "list", project).stdout
    assert "(pending)" in listed and "\texpires " in listed, listed
    assert srv.project_files(project) == {}

    # Without --owner a pending publisher is refused.
    proc = srv.cli("publisher", "add", "tp-orphan", "--github", repo, "--workflow", "release.yml", check=False)
    assert proc.returncode != 0 and "--owner" in proc.stderr, proc.stderr

    gh = issuers.gh
    r = mint(srv, gh.sign(github_claims(gh, repo, workflow="other.yml")))
    # The repository matches, so the caller may learn what else is wrong with its own publisher.
    assert_refused(r, "invalid-publisher", "job_workflow_ref")

    token = minted(srv, gh.sign(github_claims(gh, repo)))
    # The token may create only the project it is pending for.
    _, r = upload(srv, token, "tp-not-pending", "1.0", tmp_path)
    assert r.status_code == 403, f"{r.status_code} {r.text}"
    assert srv.project_files("tp-not-pending") == {}

    wheel = WheelBuilder(project, "1.0").build(tmp_path)
    clients.twine_upload(srv, token, wheel)
    assert wheel.name in srv.project_files(project)

    roles = [ln.split() for ln in srv.cli("role", "list", project).stdout.splitlines() if ln.strip()]
    assert roles == [[normalize(project), "founder", "owner"]], roles
    listed = srv.cli("publisher", "list", project).stdout
    assert f"github {repo} workflow release.yml" in listed and "pending" not in listed, listed

    # Now an ordinary publisher of the project: a fresh token uploads the next version.
    token2 = minted(srv, gh.sign(github_claims(gh, repo)))
    w2, r = upload(srv, token2, project, "1.1", tmp_path)
    assert r.status_code == 200, f"{r.status_code} {r.text}"
    events = audit(srv, project)
    assert any(e["kind"] == "file_uploaded" and e["actor"].startswith("publisher:") for e in events), events


def test_invalid_id_tokens_from_a_shared_address_do_not_block_a_valid_exchange(make_server, issuers, clients, tmp_path):
    """Issue 12, item 10: after 80 invalid ID tokens from one address (a CI fleet behind one NAT,
    or an attacker beside it), a valid exchange from that address got 429. Only invalid tokens
    are slowed now: beyond `token_max_failures` they get 429, a valid one is still exchanged."""
    srv = make_server(extra_env=oidc_env(issuers, PALISADE_ACCOUNTS_TOKEN_MAX_FAILURES="3"))
    srv.create_user("limited")
    make_project(srv, SimpleNamespace(token=srv.create_token("limited")), "tp-limited", tmp_path)
    repo = "limit-org/limit-repo"
    add_github_publisher(srv, "tp-limited", repo)
    invalid = lambda: mint(srv, issuers.gh.sign(github_claims(issuers.gh, repo, aud="pypi")))  # noqa: E731
    for _ in range(3):
        assert_refused(invalid(), "invalid-token")
    r = invalid()
    assert r.status_code == 429, f"an invalid ID token over the limit should get 429, got {r.status_code}: {r.text}"
    assert r.headers.get("Retry-After", "").isdigit(), r.headers
    assert "pal_" not in r.text

    # The valid exchange from the same address goes through, and its token uploads with twine.
    token = minted(srv, issuers.gh.sign(github_claims(issuers.gh, repo)))
    wheel = WheelBuilder("tp-limited", "2.0").build(tmp_path)
    clients.twine_upload(srv, token, wheel)
    assert wheel.name in srv.project_files("tp-limited")
    # Invalid ones are still slowed afterwards: a success does not reset the address's count.
    assert invalid().status_code == 429


def publisher_ids(server: Server, project: str, session: str) -> list[int]:
    r = server.api("GET", f"/api/projects/{project}/publishers", session)
    assert r.status_code == 200, f"{r.status_code} {r.text}"
    return [p["id"] for p in r.json()["publishers"]]


def test_another_users_publisher_for_the_same_workflow_does_not_break_the_exchange(make_server, issuers, clients, tmp_path):
    """Issue 12, item 5: registering the same repository and workflow on another project, or as
    a pending publisher for a new name, made the first project's exchange fail ("more than one
    project or owner"), and its owner could not remove the other registrations. As on PyPI, the
    job's token now covers every project whose publisher matches it, whoever registered that."""
    srv = make_server(extra_env=oidc_env(issuers))
    alice = srv.create_user("alice")
    mallory = srv.create_user("mallory")
    repo = "alice-org/widget"
    make_project(srv, SimpleNamespace(token=srv.create_token("alice")), "tp-alice-widget", tmp_path)
    make_project(srv, SimpleNamespace(token=srv.create_token("mallory")), "tp-mallory-copy", tmp_path)
    gh = {"github": {"repository": repo, "workflow": "release.yml"}}
    r = srv.api("POST", "/api/projects/tp-alice-widget/publishers", alice["session"], json=gh)
    assert r.status_code == 201, f"{r.status_code} {r.text}"
    alice_pub = r.json()["id"]
    minted(srv, issuers.gh.sign(github_claims(issuers.gh, repo)))

    # Mallory registers alice's workflow on her own project and as a pending publisher.
    r = srv.api("POST", "/api/projects/tp-mallory-copy/publishers", mallory["session"], json=gh)
    assert r.status_code == 201, f"{r.status_code} {r.text}"
    mallory_pub = r.json()["id"]
    r = srv.api("POST", "/api/account/pending-publishers", mallory["session"], json={"project": "tp-mallory-squat", **gh})
    assert r.status_code == 201, f"{r.status_code} {r.text}"
    squat_pub = r.json()["id"]
    # Registering the very same publisher twice on one project is still refused.
    r = srv.api("POST", "/api/projects/tp-alice-widget/publishers", alice["session"], json=gh)
    assert r.status_code == 409, f"{r.status_code} {r.text}"
    # Alice cannot remove publishers of projects she does not own (she need not any more).
    r = srv.api("DELETE", f"/api/projects/tp-mallory-copy/publishers/{mallory_pub}", alice["session"])
    assert r.status_code == 403, f"{r.status_code} {r.text}"

    r = mint(srv, issuers.gh.sign(github_claims(issuers.gh, repo)))
    assert r.status_code == 200, f"alice's exchange must not fail because of mallory: {r.status_code} {r.text}"
    body = r.json()
    token = body["token"]
    srv.issued_tokens.append(token)
    assert body["projects"] == ["tp-alice-widget", "tp-mallory-copy", "tp-mallory-squat"], body["projects"]
    assert body["skipped"] == [], body

    wheel = WheelBuilder("tp-alice-widget", "2.0").build(tmp_path)
    clients.twine_upload(srv, token, wheel)
    assert wheel.name in srv.project_files("tp-alice-widget")
    # The upload is bound to alice's publisher, and the event log says so.
    uploads = [e for e in audit(srv, "tp-alice-widget") if e["kind"] == "file_uploaded" and e["details"]["filename"] == wheel.name]
    assert [e["actor"] for e in uploads] == [f"publisher:{alice_pub}"], uploads
    mints = [e for e in audit(srv, "tp-alice-widget") if e["kind"] == "publisher_token_minted"]
    latest = mints[0]["details"]
    assert mints[0]["actor"] == f"publisher:{alice_pub}" and latest["publisher_id"] == alice_pub, mints[0]
    assert latest["project"] == "tp-alice-widget", latest
    # Mallory's project's history shows the exchange that could publish to it, and nothing of
    # alice's projects (a pending name of hers would be there for mallory to squat).
    theirs = [e for e in audit(srv, "tp-mallory-copy") if e["kind"] == "publisher_token_minted" and e["details"]["token_id"] == latest["token_id"]]
    assert theirs, "mallory's project history lacks the exchange"
    assert "tp-alice-widget" not in json.dumps(theirs), theirs
    r = srv.api("GET", "/api/account/events", mallory["session"])
    assert r.status_code == 200 and "tp-alice-widget" not in r.text, r.text[:500]

    # Mallory removes her publisher: alice's token keeps working for alice's project only.
    r = srv.api("DELETE", f"/api/projects/tp-mallory-copy/publishers/{mallory_pub}", mallory["session"])
    assert r.status_code == 200, f"{r.status_code} {r.text}"
    _, r = upload(srv, token, "tp-mallory-copy", "2.0", tmp_path)
    assert r.status_code == 403, f"{r.status_code} {r.text}"
    _, r = upload(srv, token, "tp-alice-widget", "2.1", tmp_path)
    assert r.status_code == 200, f"{r.status_code} {r.text}"


def test_pending_publisher_whose_name_was_taken_is_skipped_not_fatal(make_server, issuers, tmp_path):
    """A matching pending publisher whose name was taken meanwhile is skipped and reported; the
    exchange still covers the other matching publishers. Only when nothing is left does it fail
    (test_pending_publisher_for_a_project_created_meanwhile)."""
    srv = make_server(extra_env=oidc_env(issuers))
    owner = srv.create_user("owner")
    other = srv.create_user("other")
    repo = "skip-org/skip-repo"
    make_project(srv, SimpleNamespace(token=srv.create_token("owner")), "tp-skip-main", tmp_path)
    add_github_publisher(srv, "tp-skip-main", repo)
    gh = {"github": {"repository": repo, "workflow": "release.yml"}}
    r = srv.api("POST", "/api/account/pending-publishers", owner["session"], json={"project": "tp-skip-later", **gh})
    assert r.status_code == 201, f"{r.status_code} {r.text}"
    # Someone else creates the pending name by uploading to it.
    make_project(srv, SimpleNamespace(token=srv.create_token("other")), "tp-skip-later", tmp_path)
    assert other

    r = mint(srv, issuers.gh.sign(github_claims(issuers.gh, repo)))
    assert r.status_code == 200, f"{r.status_code} {r.text}"
    body = r.json()
    srv.issued_tokens.append(body["token"])
    assert body["projects"] == ["tp-skip-main"], body["projects"]
    assert [s["project"] for s in body["skipped"]] == ["tp-skip-later"] and "already exists" in body["skipped"][0]["reason"], body
    _, r = upload(srv, body["token"], "tp-skip-later", "2.0", tmp_path)
    assert r.status_code == 403, f"{r.status_code} {r.text}"
    assert "matching pending publisher skipped" in srv.log_text()


def test_pending_publishers_expire_are_limited_per_user_and_can_be_deleted(make_server, issuers, tmp_path):
    """Pending publishers reserve a name against other users, so they must not be unbounded:
    they expire, a user may hold `max_pending_publishers` of them, and their registrant can
    withdraw one with DELETE /api/account/pending-publishers/{id}."""
    srv = make_server(extra_env=oidc_env(issuers, PALISADE_OIDC_MAX_PENDING_PUBLISHERS="2"))
    squatter = srv.create_user("squatter")
    rival = srv.create_user("rival")
    gh = lambda n: {"github": {"repository": f"sq-org/repo{n}", "workflow": "release.yml"}}  # noqa: E731
    ids = []
    for n in range(2):
        r = srv.api("POST", "/api/account/pending-publishers", squatter["session"], json={"project": f"tp-squat-{n}", **gh(n)})
        assert r.status_code == 201, f"{r.status_code} {r.text}"
        assert r.json()["pending"] is True and r.json()["expires"], r.json()
        ids.append(r.json()["id"])
    r = srv.api("POST", "/api/account/pending-publishers", squatter["session"], json={"project": "tp-squat-2", **gh(2)})
    assert r.status_code == 400, f"{r.status_code} {r.text}"
    assert "max_pending_publishers = 2" in r.text and "DELETE /api/account/pending-publishers" in r.text, r.text
    # Another user's limit is their own.
    r = srv.api("POST", "/api/account/pending-publishers", rival["session"], json={"project": "tp-rival-0", **gh(9)})
    assert r.status_code == 201, f"{r.status_code} {r.text}"
    rival_id = r.json()["id"]

    # DELETE: 401 without credentials, 403 with an API token, 404 for someone else's or unknown.
    path = f"/api/account/pending-publishers/{ids[0]}"
    r = srv.api("DELETE", path)
    assert r.status_code == 401, f"{r.status_code} {r.text}"
    r = srv.api("DELETE", path, srv.create_token("squatter"))
    assert r.status_code == 403, f"{r.status_code} {r.text}"
    r = srv.api("DELETE", f"/api/account/pending-publishers/{rival_id}", squatter["session"])
    assert r.status_code == 404, f"{r.status_code} {r.text}"
    r = srv.api("DELETE", "/api/account/pending-publishers/999999", squatter["session"])
    assert r.status_code == 404, f"{r.status_code} {r.text}"
    r = srv.api("DELETE", path, squatter["session"])
    assert r.status_code == 200 and r.json() == {"removed": ids[0]}, f"{r.status_code} {r.text}"
    r = srv.api("GET", "/api/account/pending-publishers", squatter["session"])
    assert [p["id"] for p in r.json()["publishers"]] == [ids[1]], r.json()
    r = srv.api("POST", "/api/account/pending-publishers", squatter["session"], json={"project": "tp-squat-2", **gh(2)})
    assert r.status_code == 201, f"a deleted one frees a place: {r.status_code} {r.text}"

    # Expiry (time travel in the database: the minimum configurable lifetime is a day).
    gone = ids[1]
    srv.execute_sql(f"UPDATE publishers SET expires_at = 1 WHERE id = {int(gone)}")
    # An expired pending publisher matches nothing ...
    r = mint(srv, issuers.gh.sign(github_claims(issuers.gh, "sq-org/repo1")))
    assert_refused(r, "invalid-publisher")
    # ... reserves nothing: another user may register the name, which sweeps it ...
    r = srv.api("POST", "/api/account/pending-publishers", rival["session"], json={"project": "tp-squat-1", **gh(8)})
    assert r.status_code == 201, f"{r.status_code} {r.text}"
    r = srv.api("GET", "/api/account/pending-publishers", squatter["session"])
    assert gone not in [p["id"] for p in r.json()["publishers"]], r.json()
    assert f"{gone}\t" not in srv.cli("publisher", "list").stdout
    # ... and its registrant's history says it expired.
    r = srv.api("GET", "/api/account/events", squatter["session"])
    expired = [e for e in r.json()["events"] if e["kind"] == "publisher_expired"]
    assert [e["details"]["publisher_id"] for e in expired] == [gone], expired


def test_project_owner_can_remove_publishers_registered_by_others(make_server, issuers, tmp_path):
    """An owner can always remove their project's publishers, including one another user
    registered as pending (now reified) and one the administrator added."""
    srv = make_server(extra_env=oidc_env(issuers))
    srv.create_user("founder")
    cowner = srv.create_user("cowner")
    repo = "found-org/found-repo"
    srv.cli("publisher", "add", "tp-founded", "--github", repo, "--workflow", "release.yml", "--owner", "founder")
    token = minted(srv, issuers.gh.sign(github_claims(issuers.gh, repo)))
    _, r = upload(srv, token, "tp-founded", "1.0", tmp_path)
    assert r.status_code == 200, f"{r.status_code} {r.text}"
    srv.cli("role", "add", "tp-founded", "cowner", "--role", "owner")
    add_github_publisher(srv, "tp-founded", "found-org/other-repo")
    ids = publisher_ids(srv, "tp-founded", cowner["session"])
    assert len(ids) == 2, ids
    for pid in ids:
        r = srv.api("DELETE", f"/api/projects/tp-founded/publishers/{pid}", cowner["session"])
        assert r.status_code == 200, f"{r.status_code} {r.text}"
    assert publisher_ids(srv, "tp-founded", cowner["session"]) == []
    # Its tokens went with it, and new exchanges fail.
    _, r = upload(srv, token, "tp-founded", "1.1", tmp_path)
    assert r.status_code == 403, f"{r.status_code} {r.text}"
    assert_refused(mint(srv, issuers.gh.sign(github_claims(issuers.gh, repo))), "invalid-publisher")


@pytest.mark.parametrize(
    "env, expected",
    [
        pytest.param({"PALISADE_OIDC_GITHUB_ISSUER": "http://127.0.0.1:{port}"}, "allow_insecure_loopback", id="github-loopback-http"),
        pytest.param({"PALISADE_OIDC_TRUSTED_ISSUERS": "http://localhost:{port}"}, "allow_insecure_loopback", id="custom-loopback-http"),
        pytest.param({"PALISADE_OIDC_GITHUB_ISSUER": "http://issuer.example.com", "PALISADE_OIDC_ALLOW_INSECURE_LOOPBACK": "true"},
                     "use https", id="non-loopback-http-even-with-opt-in"),
    ],
)
def test_plain_http_issuer_refuses_to_start(palisade_bin, tmp_path, env, expected):
    port = free_port()
    env = {k: v.format(port=free_port()) for k, v in env.items()}
    proc = subprocess.run(
        [str(palisade_bin), "--data-dir", str(tmp_path / "data"), "serve", "--listen", f"127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        env=isolated_env(tmp_path / "env", env), cwd=tmp_path,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"palisade serve started with a plain-http issuer: {output}"
    assert expected in output, output
    assert "oidc issuer" in output, output


def test_pending_publisher_for_a_project_created_meanwhile(make_server, issuers, tmp_path):
    """A pending publisher whose project was created some other way mints nothing: PyPI's
    "valid token, but project already exists"."""
    srv = make_server(extra_env=oidc_env(issuers))
    srv.create_user("latecomer")
    srv.cli("publisher", "add", "tp-later", "--github", "late-org/late-repo", "--workflow", "release.yml", "--owner", "latecomer")
    make_project(srv, SimpleNamespace(token=srv.create_token("latecomer")), "tp-later", tmp_path)
    r = mint(srv, issuers.gh.sign(github_claims(issuers.gh, "late-org/late-repo")))
    assert_refused(r, "invalid-pending-publisher", "already exists")
