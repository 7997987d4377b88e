"""Accounts end to end: registration and email verification, login with TOTP and recovery codes,
the two-factor policy for tokens (API and CLI) and token scopes, lockouts, password change and
reset, security notifications by mail, sessions, the security history (API and `palisade audit`),
leaked-token reports from a secret-scanning partner, and no secret ever in the server log.

Mail goes to an in-process SMTP sink (`smtp_sink.py`). The module's server runs with
self-registration on, a config file naming a test disclosure partner, and high failure limits:
every request comes from 127.0.0.1, and the per-address failure counters are shared by all tests
and not cleared by a successful login. The lockout tests start their own servers with low limits
and `client_ip_header = X-Forwarded-For`, so that one test can speak from several addresses.

TOTP codes are accepted for the previous, current and next 30-second step, each step once per
factor and never older than the last one used; `next_code` picks the oldest step still usable
(and waits for a new step when all three are used), so the tests need not sleep 30 seconds.

Assertion messages never show a secret: response bodies are only shown for error statuses, and
checks that a secret is absent compare first and report a label.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass, field

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from distbuilder import WheelBuilder
from support import Server, eventually, legacy_request, strong_password, totp

UA = "palisade-e2e-accounts/1.0"
OTHER_UA = "Mozilla/5.0 (X11; Linux x86_64) e2e-other-device/2.0"
PARTNER_KEY_ID_HEADER = "X-Test-Key-Id"
PARTNER_SIGNATURE_HEADER = "X-Test-Signature"

# (label, value) of every secret the tests handle; the last test looks for them in the logs.
SECRETS: list[tuple[str, str]] = []
# Every server this module started, for the log check.
SERVERS: list[Server] = []


def remember(label: str, value: str) -> str:
    SECRETS.append((label, value))
    return value


def desc(r: requests.Response) -> str:
    """Status and, for errors only, the body (a 2xx body may carry a session or a token)."""
    if r.status_code < 300:
        return f"HTTP {r.status_code} (body withheld: it may hold a secret)"
    return f"HTTP {r.status_code}: {r.text[:500]}"


# ---- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def partner_key():
    return ec.generate_private_key(ec.SECP256R1())


def partner_pem(key) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@pytest.fixture(scope="module")
def srv(palisade_bin, tmp_path_factory, sink, partner_key):
    root = tmp_path_factory.mktemp("srv-accounts")
    config = root / "palisade.toml"
    # A JSON string is a valid TOML basic string (the PEM is ASCII).
    config.write_text(
        "[[disclosure.partners]]\n"
        'name = "test"\n'
        f'key_id_header = "{PARTNER_KEY_ID_HEADER}"\n'
        f'signature_header = "{PARTNER_SIGNATURE_HEADER}"\n'
        f'public_keys = [{{ key_identifier = "k1", key = {json.dumps(partner_pem(partner_key))} }}]\n'
    )
    env = {
        **sink.env(),
        "PALISADE_ACCOUNTS_REGISTRATION": "true",
        "PALISADE_ACCOUNTS_MAX_FAILURES": "100",
        "PALISADE_ACCOUNTS_ADDRESS_MAX_FAILURES": "1000",
        "PALISADE_CONFIG": str(config),
    }
    s = Server(palisade_bin, root / "server", "test_accounts", env).start()
    SERVERS.append(s)
    yield s
    s.stop()


# ---- accounts, TOTP and HTTP helpers -------------------------------------------------------


@dataclass
class Acct:
    name: str
    password: str
    email: str
    session: str | None = None
    totp_secret: str | None = None
    factor_id: int | None = None
    last_step: int | None = None  # the newest TOTP step the server has seen used
    recovery_codes: list[str] = field(default_factory=list)


def call(s: Server, method: str, path: str, session: str | None = None, ua: str = UA, **kw) -> requests.Response:
    headers = dict(kw.pop("headers", {}))
    headers.setdefault("User-Agent", ua)
    return s.api(method, path, session, headers=headers, **kw)


def pick_step(last: int | None) -> int:
    """The oldest TOTP step the server accepts now that is newer than `last`."""
    while True:
        now = time.time()
        cur = int(now // 30)
        lo = cur - 1 if now - cur * 30 < 25 else cur  # leave the previous step alone near a boundary
        step = lo if last is None else max(lo, last + 1)
        if step <= cur + 1:
            return step
        time.sleep((cur + 1) * 30 - now + 0.2)


def code_at(secret: str, step: int) -> str:
    return totp(secret, at=step * 30 + 1)


def next_code(acct: Acct) -> str:
    step = pick_step(acct.last_step)
    acct.last_step = step
    return code_at(acct.totp_secret, step)


def wrong_code(secret: str) -> str:
    valid = {totp(secret, offset=k) for k in range(-3, 4)}
    return next(c for c in ("000000", "123456", "999999", "424242") if c not in valid)


def begin_totp(s: Server, acct: Acct, name: str | None = None) -> dict:
    body = {"password": acct.password, **({"name": name} if name else {})}
    r = call(s, "POST", "/api/account/2fa/totp", acct.session, json=body)
    assert r.status_code == 200, f"TOTP enrolment: {desc(r)}"
    begun = r.json()
    remember(f"TOTP secret of {acct.name}", begun["secret"])
    return begun


def enrol(s: Server, acct: Acct) -> dict:
    """Enrols the account's (first) TOTP factor, confirming with the oldest usable step."""
    begun = begin_totp(s, acct)
    step = pick_step(None)
    r = call(s, "POST", begun["confirm"], acct.session, json={"code": code_at(begun["secret"], step)})
    assert r.status_code == 200, f"TOTP confirmation: {desc(r)}"
    confirmed = r.json()
    acct.totp_secret, acct.factor_id, acct.last_step = begun["secret"], begun["id"], step
    acct.recovery_codes = [remember(f"recovery code of {acct.name}", c) for c in confirmed.get("recovery_codes", [])]
    return {"begun": begun, "confirmed": confirmed}


def login(s: Server, acct: Acct, ua: str = UA, password: str | None = None) -> str:
    r = call(s, "POST", "/api/login", json={"login": acct.name, "password": password or acct.password}, ua=ua)
    assert r.status_code == 200, f"login {acct.name}: {desc(r)}"
    body = r.json()
    if body.get("second_factor_required"):
        ticket = remember("login ticket", body["ticket"])
        r = call(s, "POST", "/api/login/second-factor", json={"ticket": ticket, "code": next_code(acct)}, ua=ua)
        assert r.status_code == 200, f"second factor {acct.name}: {desc(r)}"
        body = r.json()
    return remember(f"session of {acct.name}", body["session"])


def make_account(s: Server, name: str, *, two_factor: bool = True) -> Acct:
    """A user created by the administrator with a vouched-for address, logged in, and (by
    default) with a TOTP factor enrolled through the API."""
    password = remember(f"password of {name}", strong_password(name))
    email = f"{name}@example.test"
    s.cli_input(password + "\n", "user", "create", name, "--email", email, "--email-verified", "--password-stdin")
    acct = Acct(name, password, email)
    acct.session = login(s, acct)
    if two_factor:
        enrol(s, acct)
    return acct


def api_token(s: Server, acct: Acct, **body) -> dict:
    r = call(s, "POST", "/api/account/tokens", acct.session, json=body)
    assert r.status_code == 201, f"token creation: {desc(r)}"
    out = r.json()
    remember(f"API token of {acct.name}", out["token"])
    return out


def cli_token(s: Server, user: str, *args: str) -> str:
    out = s.cli("token", "create", "--user", user, *args).stdout.strip()
    ok = re.fullmatch(r"pal_[0-9A-Za-z]{38}", out) is not None
    assert ok, "`token create` should print only the token"
    return remember(f"CLI token of {user}", out)


def upload(s: Server, token: str, project: str, version: str, tmp_path) -> requests.Response:
    w = WheelBuilder(project, version).build(tmp_path)
    return s.upload_raw(token, w.name, w.read_bytes(), name=project, version=version)


def upload_with_session(s: Server, session: str, project: str, version: str, tmp_path) -> requests.Response:
    w = WheelBuilder(project, version).build(tmp_path)
    req = legacy_request(s.upload_url, None, w.name, w.read_bytes(), name=project, version=version)
    req.headers["Authorization"] = f"Bearer {session}"
    return s.http.send(req, timeout=60, allow_redirects=False)


def account_status(s: Server, session: str) -> int:
    return call(s, "GET", "/api/account", session).status_code


def events_of(s: Server, session: str) -> list[dict]:
    r = call(s, "GET", "/api/account/events", session)
    assert r.status_code == 200, desc(r)
    return r.json()["events"]


def mail_line_after(body: str, marker: str) -> str:
    """The first non-empty line after the line containing `marker`."""
    lines = [ln.strip() for ln in body.splitlines()]
    i = next(i for i, ln in enumerate(lines) if marker in ln)
    return next(ln for ln in lines[i + 1:] if ln)


# ---- registration -----------------------------------------------------------------------------


def test_registration_weak_passwords_verification_and_policy(srv, sink, tmp_path):
    name = "newcomer-quill"
    email = f"{name}@example.test"
    for weak in ("password123", name + "1"):
        r = call(srv, "POST", "/api/register", json={"name": name, "email": email, "password": weak})
        assert r.status_code == 400, desc(r)
        assert "password is too weak" in r.text, r.text
        echoed = weak in r.text
        assert not echoed, "the error must not echo the password"

    password = remember(f"password of {name}", strong_password(name))
    mark = sink.mark()
    r = call(srv, "POST", "/api/register", json={"name": name, "email": email, "password": password})
    assert r.status_code == 201, desc(r)
    assert r.json() == {"name": name, "email": email, "verification_sent": True}

    # The same name again: the account exists.
    r = call(srv, "POST", "/api/register", json={"name": name, "email": email, "password": password})
    assert r.status_code == 409, desc(r)

    mail = sink.wait_for(to=email, subject_contains="Verify your email address", start=mark)
    m = re.search(r"(http://\S+/api/verify-email\?token=)(\S+)", mail.body)
    assert m, f"no verification link in the mail (subject {mail.subject!r})"
    remember("email verification token", m.group(2))
    link = m.group(0)
    assert link.startswith(f"{srv.url}/api/verify-email?token="), "the link should point at this server"

    acct = Acct(name, password, email)
    acct.session = login(srv, acct)
    r = call(srv, "GET", "/api/account", acct.session)
    assert r.status_code == 200, desc(r)
    assert r.json()["email_verified"] is False
    assert r.json()["may_publish"] is False
    assert r.json()["second_factors"] == []

    # Neither a token nor an upload (here with the session itself) for an unverified, 1-factor account.
    r = call(srv, "POST", "/api/account/tokens", acct.session, json={"description": "too early"})
    assert r.status_code == 403, desc(r)
    assert "two-factor" in r.text or "verified email" in r.text, r.text
    r = upload_with_session(srv, acct.session, "quillwort-registered", "1.0", tmp_path)
    assert r.status_code == 403, desc(r)
    assert "a login session cannot upload" in r.text, r.text
    assert srv.project_files("quillwort-registered") == {}

    # Following the mailed link verifies the address, once.
    r = srv.http.get(link, headers={"User-Agent": UA}, timeout=30, allow_redirects=False)
    assert r.status_code == 200, desc(r)
    assert r.json() == {"verified": True, "email": email}
    r = call(srv, "GET", "/api/account", acct.session)
    assert r.json()["email_verified"] is True
    r = srv.http.get(link, headers={"User-Agent": UA}, timeout=30, allow_redirects=False)
    assert r.status_code == 400, desc(r)
    assert "invalid, expired or already used" in r.text, r.text

    # Verified but still without a second factor: still no token.
    r = call(srv, "POST", "/api/account/tokens", acct.session, json={"description": "still too early"})
    assert r.status_code == 403, desc(r)
    assert "two-factor authentication is required" in r.text, r.text

    kinds = [e["kind"] for e in events_of(srv, acct.session)]
    assert "account_created" in kinds and "email_verified" in kinds, kinds


def test_verifying_an_address_another_account_verified_is_a_conflict_that_keeps_the_link(srv, sink):
    """Issue 13: following the verification link for an address that another account had
    already verified answered 500, and used up the link. It is a 409 that says why, the link
    stays usable, and it works once the other account lets go of the address. The CLI's
    `user verify-email` says the same instead of an internal error."""
    holder = make_account(srv, "address-holder-wren", two_factor=False)
    name = "address-seeker-wren"
    password = remember(f"password of {name}", strong_password(name))
    mark = sink.mark()
    r = call(srv, "POST", "/api/register", json={"name": name, "email": holder.email, "password": password})
    assert r.status_code == 201, desc(r)
    mail = sink.wait_for(to=holder.email, subject_contains="Verify your email address", start=mark)
    m = re.search(r"http://\S+/api/verify-email\?token=(\S+)", mail.body)
    assert m, f"no verification link in the mail (subject {mail.subject!r})"
    remember("email verification token", m.group(1))
    link = m.group(0)

    for _ in range(2):  # the same answer twice: the first refusal did not use the link up
        r = srv.http.get(link, headers={"User-Agent": UA}, timeout=30, allow_redirects=False)
        assert r.status_code == 409, desc(r)
        assert "verified address of another account" in r.text, r.text

    out = srv.cli("user", "verify-email", name, check=False)
    assert out.returncode != 0, "verifying a taken address must fail"
    assert "verified address of another account" in out.stderr, out.stderr
    assert "internal" not in out.stderr, out.stderr

    # The holder moves to another address: the seeker's link now verifies theirs.
    r = call(srv, "POST", "/api/account/email", holder.session,
             json={"email": "address-holder-wren@elsewhere.test", "password": holder.password})
    assert r.status_code == 200, desc(r)
    r = srv.http.get(link, headers={"User-Agent": UA}, timeout=30, allow_redirects=False)
    assert r.status_code == 200, desc(r)
    assert r.json() == {"verified": True, "email": holder.email}
    r = srv.http.get(link, headers={"User-Agent": UA}, timeout=30, allow_redirects=False)
    assert r.status_code == 400, desc(r)
    assert "invalid, expired or already used" in r.text, r.text


def test_registration_disabled_by_default(make_server, sink):
    s = make_server(sink.env())
    SERVERS.append(s)
    password = strong_password("closed-door")
    r = call(s, "POST", "/api/register", json={"name": "closed-door", "email": "closed-door@example.test", "password": password})
    assert r.status_code == 403, desc(r)
    assert "self-registration is disabled" in r.text, r.text
    assert "closed-door" not in s.cli("user", "list").stdout
    time.sleep(0.5)
    assert sink.messages_to("closed-door@example.test") == []


# ---- login and second factor ------------------------------------------------------------------


def test_login_errors_totp_replay_and_recovery_codes(srv, sink):
    acct = make_account(srv, "login-otter", two_factor=False)

    wrong = call(srv, "POST", "/api/login", json={"login": acct.name, "password": acct.password + "x"})
    assert wrong.status_code == 401, desc(wrong)
    assert wrong.text.strip() == "invalid login or password"
    unknown = call(srv, "POST", "/api/login", json={"login": "nobody-otter", "password": acct.password})
    assert unknown.status_code == 401, desc(unknown)
    assert unknown.text == wrong.text, "an unknown user must look exactly like a wrong password"

    enrolled = srv.enrol_totp(acct.name, acct.session, acct.password)
    # That helper confirmed with the code of the step current at its call: nothing newer was used.
    acct.last_step = int(time.time() // 30)
    acct.totp_secret = remember("TOTP secret of login-otter", enrolled["totp_secret"])
    acct.recovery_codes = [remember("recovery code", c) for c in enrolled["recovery_codes"]]
    assert len(acct.recovery_codes) == 10
    uri = enrolled["otpauth_uri"]
    assert uri.startswith("otpauth://totp/")
    has_secret = f"secret={acct.totp_secret}" in uri
    assert has_secret, "otpauth URI should carry the secret"
    assert "issuer=" in uri

    def start_login() -> str:
        r = call(srv, "POST", "/api/login", json={"login": acct.name, "password": acct.password})
        assert r.status_code == 200, desc(r)
        body = r.json()
        assert body["second_factor_required"] is True
        assert set(body["methods"]) == {"totp", "recovery_code"}
        assert "session" not in body
        return remember("login ticket", body["ticket"])

    ticket = start_login()
    # A ticket is not a session.
    r = call(srv, "GET", "/api/account", ticket)
    assert r.status_code == 401, desc(r)
    assert "login is not complete" in r.text

    r = call(srv, "POST", "/api/login/second-factor", json={"ticket": ticket, "code": wrong_code(acct.totp_secret)})
    assert r.status_code == 401, desc(r)
    assert "invalid or already used code" in r.text

    code = next_code(acct)
    r = call(srv, "POST", "/api/login/second-factor", json={"ticket": ticket, "code": code})
    assert r.status_code == 200, desc(r)
    session = remember("session", r.json()["session"])
    assert r.json()["user"] == acct.name and r.json()["two_factor"] is True
    r = call(srv, "GET", "/api/account", session)
    assert r.status_code == 200 and r.json()["name"] == acct.name, desc(r)
    # The ticket was used up.
    r = call(srv, "POST", "/api/login/second-factor", json={"ticket": ticket, "code": wrong_code(acct.totp_secret)})
    assert r.status_code == 401, desc(r)
    assert "ticket is invalid or expired" in r.text

    # The same code on a fresh ticket: a replay.
    ticket2 = start_login()
    r = call(srv, "POST", "/api/login/second-factor", json={"ticket": ticket2, "code": code})
    assert r.status_code == 401, desc(r)
    assert "invalid or already used code" in r.text

    # A recovery code works once.
    mark = sink.mark()
    rc = acct.recovery_codes[0]
    r = call(srv, "POST", "/api/login/second-factor", json={"ticket": start_login(), "recovery_code": rc})
    assert r.status_code == 200, desc(r)
    remember("session", r.json()["session"])
    r = call(srv, "POST", "/api/login/second-factor", json={"ticket": start_login(), "recovery_code": rc})
    assert r.status_code == 401, desc(r)
    mail = sink.wait_for(to=acct.email, subject_contains="A recovery code was used", start=mark)
    assert "9 remain" in mail.body, mail.body
    r = call(srv, "GET", "/api/account", session)
    assert r.json()["recovery_codes_left"] == 9


# ---- the two-factor policy and token scopes --------------------------------------------------


def test_two_factor_policy_for_tokens_and_token_scopes(srv, tmp_path):
    project = "zanthoxylum-scoped"
    acct = make_account(srv, "policy-heron", two_factor=False)

    r = call(srv, "POST", "/api/account/tokens", acct.session, json={"description": "no 2fa yet"})
    assert r.status_code == 403, desc(r)
    assert "two-factor authentication is required" in r.text, r.text
    proc = srv.cli("token", "create", "--user", acct.name, check=False)
    assert proc.returncode != 0, "the CLI must refuse a token to a user without a second factor"
    printed_token = "pal_" in proc.stdout
    assert not printed_token, "the refused CLI call must not print a token"
    assert "second factor" in proc.stderr, proc.stderr

    enrol(srv, acct)
    cli_token(srv, acct.name)  # the CLI now agrees
    up = api_token(srv, acct, description="upload only", projects=[project], actions=["upload"])
    assert up["projects"] == [project] and up["actions"] == ["upload"]
    assert up["description"] == "upload only" and up["revoked"] is None
    yk = api_token(srv, acct, description="yank only", projects=[project], actions=["yank"])
    assert yk["projects"] == [project] and yk["actions"] == ["yank"]

    r = call(srv, "GET", "/api/account/tokens", acct.session)
    assert r.status_code == 200, desc(r)
    listed = r.text
    leaked = up["token"] in listed or yk["token"] in listed
    assert not leaked, "the token list must not show secrets"
    by_id = {t["id"]: t for t in r.json()["tokens"]}
    assert by_id[up["id"]]["actions"] == ["upload"] and by_id[yk["id"]]["projects"] == [project]

    r = upload(srv, up["token"], project, "1.0", tmp_path)
    assert r.status_code == 200, desc(r)
    r = upload(srv, yk["token"], project, "1.1", tmp_path)
    assert r.status_code == 403, desc(r)
    assert 'does not allow the "upload" action' in r.text, r.text
    r = upload(srv, up["token"], "quokkafold-elsewhere", "1.0", tmp_path)
    assert r.status_code == 403, desc(r)

    yank_path = f"/api/projects/{project}/releases/1.0/yank"
    r = call(srv, "POST", yank_path, up["token"])
    assert r.status_code == 403, desc(r)
    assert 'does not allow the "yank" action' in r.text, r.text
    r = call(srv, "POST", yank_path, yk["token"], json={"reason": "scope test"})
    assert r.status_code == 200, desc(r)
    assert r.json() == {"project": project, "version": "1.0", "yanked": True, "files": 1}
    files = srv.project_files(project)
    assert all(f.get("yanked") == "scope test" for f in files.values()), files
    # A token cannot manage account settings.
    r = call(srv, "GET", "/api/account/sessions", yk["token"])
    assert r.status_code == 403, desc(r)


# ---- lockouts ------------------------------------------------------------------------------------


def lockout_server(make_server, sink, **limits: str) -> Server:
    """A server of one test with the given [accounts] limits (PALISADE_ACCOUNTS_<KEY>) whose
    clients say where they are in X-Forwarded-For (`at(addr)`); without it, 127.0.0.1."""
    env = {**sink.env(), "PALISADE_CLIENT_IP_HEADER": "X-Forwarded-For"}
    env.update({f"PALISADE_ACCOUNTS_{k.upper()}": v for k, v in limits.items()})
    s = make_server(env)
    SERVERS.append(s)
    return s


def at(addr: str) -> dict[str, dict[str, str]]:
    return {"headers": {"X-Forwarded-For": addr}}


def password_login(s: Server, name: str, password: str, addr: str | None = None) -> requests.Response:
    r = call(s, "POST", "/api/login", json={"login": name, "password": password}, **(at(addr) if addr else {}))
    if r.status_code == 200:
        remember("session", r.json().get("session") or r.json()["ticket"])
    return r


def assert_locked(r: requests.Response, longest: int) -> int:
    assert r.status_code == 429, desc(r)
    assert "too many failed attempts" in r.text, r.text
    retry = r.headers.get("Retry-After", "")
    assert retry.isdigit() and 0 < int(retry) <= longest, r.headers
    return int(retry)


def test_wrong_passwords_from_one_address_do_not_lock_the_account_elsewhere(make_server, sink):
    """Issue 12, item 10: five wrong passwords for a user locked that user's correct password
    everywhere for 900 s. Now they lock only that (account, address) pair, briefly."""
    s = lockout_server(make_server, sink, max_failures="3")
    a = make_account(s, "lock-alpha", two_factor=False)
    b = make_account(s, "lock-bravo", two_factor=False)
    for _ in range(3):
        assert password_login(s, a.name, a.password + "-wrong", "10.0.0.66").status_code == 401
    # The attacker's address is locked for this account, even with the right password, and
    # only for the first, short lockout (60 s by default, not 900).
    assert_locked(password_login(s, a.name, a.password, "10.0.0.66"), 60)
    # The account's owner, from an address never seen before, logs in.
    r = password_login(s, a.name, a.password, "192.0.2.7")
    assert r.status_code == 200, desc(r)
    # Anyone else behind the attacker's address logs in too.
    r = password_login(s, b.name, b.password, "10.0.0.66")
    assert r.status_code == 200, desc(r)


def test_password_guessing_from_many_addresses_does_not_lock_out_a_known_address(make_server, sink):
    """Guessing one account from many addresses locks the account, but not where its owner
    completed a login recently (here 127.0.0.1, where make_account logged in)."""
    s = lockout_server(make_server, sink, max_failures="3", account_max_failures="4")
    a = make_account(s, "lock-charlie", two_factor=False)
    for i in range(4):
        assert password_login(s, a.name, "not-the-password", f"198.51.100.{i}").status_code == 401
    assert_locked(password_login(s, a.name, a.password, "203.0.113.9"), 60)
    r = password_login(s, a.name, a.password)
    assert r.status_code == 200, desc(r)
    # A name that matches no account is limited alike: a lockout does not reveal existence.
    for i in range(4):
        assert password_login(s, "no-such-user", "whatever-password", f"198.51.100.{i}").status_code == 401
    assert_locked(password_login(s, "no-such-user", "whatever-password", "203.0.113.9"), 60)


def test_password_spraying_from_a_shared_address_spares_its_known_users(make_server, sink):
    """One address guessing across accounts (a company's NAT with an attacker behind it) is
    locked out, except for users who logged in from it recently."""
    s = lockout_server(make_server, sink, address_max_failures="4")
    bob = make_account(s, "spray-bob", two_factor=False)
    carol = make_account(s, "spray-carol", two_factor=False)
    nat = "10.1.1.1"
    assert password_login(s, bob.name, bob.password, nat).status_code == 200
    for i in range(4):
        assert password_login(s, f"guess-{i}", "whatever-password", nat).status_code == 401
    assert_locked(password_login(s, carol.name, carol.password, nat), 60)
    r = password_login(s, bob.name, bob.password, nat)
    assert r.status_code == 200, desc(r)
    # Carol elsewhere is not affected.
    assert password_login(s, carol.name, carol.password, "192.0.2.8").status_code == 200


def test_distributed_guessing_meets_the_global_ceiling(make_server, sink):
    s = lockout_server(make_server, sink, global_max_failures="5")
    a = make_account(s, "global-alpha", two_factor=False)
    d = make_account(s, "global-delta", two_factor=False)
    for i in range(5):
        assert password_login(s, f"victim-{i}", "whatever-password", f"198.51.100.{i}").status_code == 401
    assert_locked(password_login(s, d.name, d.password, "203.0.113.1"), 60)
    # Known addresses still work: their pairs keep their own limit.
    assert password_login(s, a.name, a.password).status_code == 200


def test_lockouts_are_short_and_grow(make_server, sink):
    """Not a flat 900 s for a few mistakes: the first lockout lasts first_lockout_secs, each
    further one twice as long (up to lockout_secs)."""
    s = lockout_server(make_server, sink, max_failures="2", first_lockout_secs="1")
    a = make_account(s, "grow-echo", two_factor=False)
    addr = "10.2.2.2"
    wrong = lambda: password_login(s, a.name, "not-the-password", addr)  # noqa: E731

    def unlocked_and_counted():
        r = wrong()
        assert r.status_code == 401, desc(r)

    for _ in range(2):
        assert wrong().status_code == 401
    assert assert_locked(wrong(), 900) == 1
    for expected in (2, 4):
        # Refused attempts are not counted, so the lockout does not grow while it runs; once it
        # is over, a new budget of two failures brings the next, longer one.
        eventually(unlocked_and_counted, timeout=expected + 3)
        assert wrong().status_code == 401
        assert assert_locked(wrong(), 900) == expected
    # Another address, and the right password, were never affected.
    r = password_login(s, a.name, a.password, "192.0.2.9")
    assert r.status_code == 200, desc(r)


def test_second_factor_failures_lock_out(make_server, sink):
    s = lockout_server(make_server, sink, max_failures="3")
    acct = make_account(s, "lock-foxtrot")

    def ticket(addr: str | None = None) -> str:
        r = password_login(s, acct.name, acct.password, addr)
        assert r.status_code == 200 and r.json()["second_factor_required"], desc(r)
        return remember("login ticket", r.json()["ticket"])

    def code(t: str, c: str, addr: str | None = None) -> requests.Response:
        return call(s, "POST", "/api/login/second-factor", json={"ticket": t, "code": c}, **(at(addr) if addr else {}))

    attacker = "10.9.9.9"
    t = ticket(attacker)
    bad = wrong_code(acct.totp_secret)
    for _ in range(3):
        assert code(t, bad, attacker).status_code == 401
    assert_locked(code(t, next_code(acct), attacker), 60)
    # A fresh ticket does not help, and neither does another unknown address: whoever got here
    # knows the password, so the whole account gets the tight budget ...
    assert_locked(code(ticket(attacker), next_code(acct), attacker), 60)
    assert_locked(code(ticket("198.51.100.5"), next_code(acct), "198.51.100.5"), 60)
    # ... except where its owner logs in.
    r = code(ticket(), next_code(acct))
    assert r.status_code == 200, desc(r)
    remember("session", r.json()["session"])
    kinds = [e["kind"] for e in events_of(s, r.json()["session"])]
    assert kinds.count("login_failed") == 3, kinds


def test_invalid_login_tickets_and_links_from_a_shared_address_do_not_block_valid_ones(make_server, sink):
    """Login tickets, verification links and reset tokens cannot be guessed: invalid ones are
    slowed per address, valid ones always work."""
    s = lockout_server(make_server, sink, token_max_failures="2")
    acct = make_account(s, "ticket-golf")
    for _ in range(2):
        r = call(s, "POST", "/api/login/second-factor", json={"ticket": "palsess_forged", "code": "123456"})
        assert r.status_code == 401, desc(r)
    assert call(s, "POST", "/api/password/reset", json={"token": "forged", "new_password": "x"}).status_code == 429
    assert call(s, "GET", "/api/verify-email?token=forged").status_code == 429
    r = call(s, "POST", "/api/login/second-factor", json={"ticket": "palsess_forged", "code": "123456"})
    assert_locked(r, 60)
    # The real ticket from the same address goes through.
    r = password_login(s, acct.name, acct.password)
    ticket = r.json()["ticket"]
    r = call(s, "POST", "/api/login/second-factor", json={"ticket": ticket, "code": next_code(acct)})
    assert r.status_code == 200, desc(r)
    remember("session", r.json()["session"])


# ---- password change and reset ---------------------------------------------------------------


def test_password_change_ends_sessions_and_revokes_tokens(srv, sink, tmp_path):
    project = "brambleberry-pwchange"
    acct = make_account(srv, "pwchange-lynx")
    other = login(srv, acct)
    token = api_token(srv, acct, description="before the change")["token"]
    r = upload(srv, token, project, "1.0", tmp_path)
    assert r.status_code == 200, desc(r)
    new_password = remember("new password", strong_password("pwchange-lynx-new"))

    r = call(srv, "POST", "/api/account/password", acct.session,
             json={"current_password": acct.password + "-wrong", "new_password": new_password})
    assert r.status_code == 403, desc(r)
    assert "the password is wrong" in r.text
    assert account_status(srv, other) == 200, "a refused change must not end sessions"

    # A weak new password is refused and changes nothing.
    r = call(srv, "POST", "/api/account/password", acct.session,
             json={"current_password": acct.password, "new_password": "password123"})
    assert r.status_code == 400, desc(r)
    assert "too weak" in r.text

    mark = sink.mark()
    r = call(srv, "POST", "/api/account/password", acct.session,
             json={"current_password": acct.password, "new_password": new_password})
    assert r.status_code == 200, desc(r)
    body = r.json()
    assert body["changed"] is True
    assert body["sessions_ended"] >= 2 and body["tokens_revoked"] == 1, {k: v for k, v in body.items() if k != "session"}
    fresh = remember("session", body["session"])

    assert account_status(srv, other) == 401
    assert account_status(srv, acct.session) == 401
    assert account_status(srv, fresh) == 200
    r = upload(srv, token, project, "1.0", tmp_path)
    assert r.status_code == 403, desc(r)
    assert "revoked" in r.text, r.text

    mail = sink.wait_for(to=acct.email, subject_contains="password was changed", start=mark)
    assert "API tokens revoked" in mail.body

    r = call(srv, "POST", "/api/login", json={"login": acct.name, "password": acct.password})
    assert r.status_code == 401, desc(r)
    acct.password = new_password
    assert account_status(srv, login(srv, acct)) == 200


def test_password_reset_by_mail(srv, sink):
    acct = make_account(srv, "reset-marten")
    mark = sink.mark()
    r1 = call(srv, "POST", "/api/password/forgot", json={"login": acct.name})
    assert r1.status_code == 202, desc(r1)
    r2 = call(srv, "POST", "/api/password/forgot", json={"login": "ghost-marten"})
    assert r2.status_code == 202, desc(r2)
    r3 = call(srv, "POST", "/api/password/forgot", json={"login": "ghost-marten@example.test"})
    assert r3.status_code == 202, desc(r3)
    assert r1.json() == r2.json() == r3.json()
    assert r1.json()["accepted"] is True

    mail = sink.wait_for(to=acct.email, subject_contains="Password reset", start=mark)
    token = remember("reset token", mail_line_after(mail.body, "Use this token within an hour"))
    time.sleep(1)  # mail is sent off the request path: give a wrong one time to show up
    resets = sink.find(subject_contains="Password reset", start=mark)
    assert [m.to for m in resets] == [[acct.email]], [m.to for m in resets]
    assert sink.messages_to("ghost-marten@example.test", start=mark) == []

    new_password = remember("new password", strong_password("reset-marten-new"))
    r = call(srv, "POST", "/api/password/reset", json={"token": token, "new_password": new_password})
    assert r.status_code == 200, desc(r)
    assert r.json()["reset"] is True and r.json()["sessions_ended"] >= 1
    assert account_status(srv, acct.session) == 401

    r = call(srv, "POST", "/api/password/reset", json={"token": token, "new_password": strong_password("again")})
    assert r.status_code == 400, desc(r)
    assert "invalid, expired or already used" in r.text

    r = call(srv, "POST", "/api/login", json={"login": acct.name, "password": acct.password})
    assert r.status_code == 401, desc(r)
    acct.password = new_password
    assert account_status(srv, login(srv, acct)) == 200
    sink.wait_for(to=acct.email, subject_contains="Your password was reset", start=mark)


def test_password_reset_with_weak_password_keeps_the_token(srv, sink):
    """reset_password documents: a weak new password is refused (400) and the token is given
    back, so the user can retry with the same mail."""
    acct = make_account(srv, "reset-stoat", two_factor=False)
    mark = sink.mark()
    r = call(srv, "POST", "/api/password/forgot", json={"login": acct.email})
    assert r.status_code == 202, desc(r)
    mail = sink.wait_for(to=acct.email, subject_contains="Password reset", start=mark)
    token = remember("reset token", mail_line_after(mail.body, "Use this token within an hour"))

    weak = call(srv, "POST", "/api/password/reset", json={"token": token, "new_password": "password123"})
    new_password = remember("new password", strong_password("reset-stoat-new"))
    retry = call(srv, "POST", "/api/password/reset", json={"token": token, "new_password": new_password})
    assert (weak.status_code, retry.status_code) == (400, 200), (
        f"weak password: {desc(weak)}; retry with a strong one and the same token: {desc(retry)}"
    )
    assert "too weak" in weak.text
    acct.password = new_password
    assert account_status(srv, login(srv, acct)) == 200


# ---- notifications ------------------------------------------------------------------------------


def test_mail_queued_by_a_cli_command_is_sent_before_it_exits(srv, sink):
    """CLI commands go through the core's operations, which queue their mail in the background;
    the process ended (and dropped the mail) before it was sent. Now the command waits for it."""
    acct = make_account(srv, "cli-mail-heron")
    mark = sink.mark()
    srv.cli("token", "create", "--user", acct.name, "--description", "made at the console")
    mail = sink.wait_for(to=acct.email, subject_contains="API token created", start=mark)
    assert "made at the console" in mail.body


def test_security_notifications_by_mail(srv, sink, tmp_path):
    project = "lanternfishery"
    start = sink.mark()
    owner = make_account(srv, "notify-owl")
    helper = make_account(srv, "notify-wren")

    # 2FA added (the enrolment in make_account)
    sink.wait_for(to=owner.email, subject_contains="Two-factor authentication added", start=start)

    # 2FA removed: a second authenticator, then its removal (the wrong password first).
    begun = begin_totp(srv, owner, name="backup phone")
    r = call(srv, "POST", begun["confirm"], owner.session, json={"code": code_at(begun["secret"], pick_step(None))})
    assert r.status_code == 200, desc(r)
    assert "recovery_codes" not in r.json(), "a second factor must not replace the recovery codes"
    r = call(srv, "DELETE", f"/api/account/2fa/{begun['id']}", owner.session, json={"password": owner.password + "x"})
    assert r.status_code == 403, desc(r)
    mark = sink.mark()
    r = call(srv, "DELETE", f"/api/account/2fa/{begun['id']}", owner.session, json={"password": owner.password})
    assert r.status_code == 200, desc(r)
    assert r.json() == {"removed": begun["id"], "two_factor": True}
    sink.wait_for(to=owner.email, subject_contains="Two-factor authentication removed", start=mark)

    # Token created
    mark = sink.mark()
    tok = api_token(srv, owner, description="notify test")
    mail = sink.wait_for(to=owner.email, subject_contains="API token created", start=mark)
    assert tok["hint"] in mail.body and "notify test" in mail.body
    token_shown = tok["token"] in mail.body
    assert not token_shown, "the mail must not carry the token itself"

    r = upload(srv, tok["token"], project, "1.0", tmp_path)
    assert r.status_code == 200, desc(r)

    # Trusted publisher added (by the owner)
    mark = sink.mark()
    r = call(srv, "POST", f"/api/projects/{project}/publishers", owner.session,
             json={"github": {"repository": "o/r", "workflow": "release.yml"}})
    assert r.status_code == 201, desc(r)
    mail = sink.wait_for(to=owner.email, subject_contains="Trusted publisher added", start=mark)
    assert project in mail.body and "o/r" in mail.body, mail.body

    # Role change: the user whose role changed is told.
    mark = sink.mark()
    r = call(srv, "PUT", f"/api/projects/{project}/roles/{helper.name}", owner.session, json={"role": "maintainer"})
    assert r.status_code == 200, desc(r)
    assert r.json() == {"project": project, "user": helper.name, "role": "maintainer"}
    mail = sink.wait_for(to=helper.email, subject_contains="Your role changed", start=mark)
    assert "maintainer" in mail.body and project in mail.body and owner.name in mail.body

    # New login: none for a client seen before, one for an unknown user agent.
    sink.wait_for(to=owner.email, subject_contains="New login", start=start)
    before = len(sink.find(to=owner.email, subject_contains="New login"))
    assert before >= 1, "the very first login is from an unknown client too"
    login(srv, owner)
    mark = sink.mark()
    login(srv, owner, ua=OTHER_UA)
    mail = sink.wait_for(to=owner.email, subject_contains="New login", start=mark)
    assert OTHER_UA in mail.body and "127.0.0.1" in mail.body, mail.body
    time.sleep(0.5)
    after = len(sink.find(to=owner.email, subject_contains="New login"))
    assert after == before + 1, f"expected one new-login mail (unknown user agent only), got {after - before}"


# ---- sessions -------------------------------------------------------------------------------------


def test_sessions_list_end_and_logout(srv):
    acct = make_account(srv, "session-vole", two_factor=False)
    a = acct.session
    b = login(srv, acct, ua=OTHER_UA)

    def listing(session: str) -> list[dict]:
        r = call(srv, "GET", "/api/account/sessions", session)
        assert r.status_code == 200, desc(r)
        return r.json()["sessions"]

    seen_a, seen_b = listing(a), listing(b)
    current_a = [s for s in seen_a if s["current"]]
    current_b = [s for s in seen_b if s["current"]]
    assert len(current_a) == 1 and len(current_b) == 1
    assert current_a[0]["id"] != current_b[0]["id"]
    assert {s["id"] for s in seen_a} == {s["id"] for s in seen_b} == {current_a[0]["id"], current_b[0]["id"]}
    assert current_a[0]["addr"] == "127.0.0.1" and current_a[0]["user_agent"] == UA
    assert current_b[0]["user_agent"] == OTHER_UA
    listed = json.dumps(seen_a)
    shows_secret = a in listed or b in listed
    assert not shows_secret, "the session list must not show session secrets"

    r = call(srv, "DELETE", f"/api/account/sessions/{current_b[0]['id']}", a)
    assert r.status_code == 200, desc(r)
    assert r.json() == {"ended": current_b[0]["id"]}
    assert account_status(srv, b) == 401
    assert [s["id"] for s in listing(a)] == [current_a[0]["id"]]
    r = call(srv, "DELETE", f"/api/account/sessions/{current_b[0]['id']}", a)
    assert r.status_code == 404, desc(r)

    r = call(srv, "POST", "/api/logout", a)
    assert r.status_code == 200, desc(r)
    assert r.json() == {"logged_out": True}
    assert account_status(srv, a) == 401
    r = call(srv, "POST", "/api/logout", a)
    assert r.status_code == 401, desc(r)


# ---- security history ------------------------------------------------------------------------------


def test_security_history_api_and_audit_cli(srv):
    acct = make_account(srv, "history-ibis", two_factor=False)
    r = call(srv, "POST", "/api/login", json={"login": acct.name, "password": acct.password + "-wrong"})
    assert r.status_code == 401, desc(r)
    enrol(srv, acct)
    api_token(srv, acct, description="history")
    new_password = remember("new password", strong_password("history-ibis-new"))
    r = call(srv, "POST", "/api/account/password", acct.session,
             json={"current_password": acct.password, "new_password": new_password})
    assert r.status_code == 200, desc(r)
    acct.password, acct.session = new_password, remember("session", r.json()["session"])

    wanted = {"login", "login_failed", "2fa_added", "token_created", "password_changed"}
    events = events_of(srv, acct.session)
    for kind in wanted:
        matching = [e for e in events if e["kind"] == kind]
        assert matching, f"no {kind} event in {[e['kind'] for e in events]}"
        e = matching[0]
        assert e["addr"] == "127.0.0.1" and e["user_agent"] == UA, e
        assert e["user"] == acct.name, e
    assert next(e for e in events if e["kind"] == "login_failed")["details"] == {"reason": "password"}
    assert next(e for e in events if e["kind"] == "token_created")["details"]["via"] == "api"
    # Newest first.
    assert [e["id"] for e in events] == sorted((e["id"] for e in events), reverse=True)

    out = srv.cli("audit", "--user", acct.name, "--json").stdout
    cli_events = [json.loads(ln) for ln in out.splitlines() if ln.strip()]
    assert {e["kind"] for e in cli_events} >= wanted, [e["kind"] for e in cli_events]
    api_view = {(e["id"], e["kind"], e["addr"], e["user_agent"]) for e in events}
    cli_view = {(e["id"], e["kind"], e["addr"], e["user_agent"]) for e in cli_events}
    assert cli_view == api_view
    shows_secret = any(v in out for _, v in SECRETS)
    assert not shows_secret, "`palisade audit` printed a secret"


# ---- leaked-token reports ------------------------------------------------------------------------


def test_token_disclosure_by_partner(srv, sink, partner_key, tmp_path):
    project = "marzipanic-leak"
    acct = make_account(srv, "leak-puffin")
    leaked = api_token(srv, acct, description="about to leak")
    kept = api_token(srv, acct, description="stays")
    r = upload(srv, leaked["token"], project, "1.0", tmp_path)
    assert r.status_code == 200, desc(r)

    body = json.dumps([
        {"token": leaked["token"], "type": "palisade_api_token", "url": "https://example.test/leak", "source": "content"}
    ]).encode()

    def sign(data: bytes) -> str:
        return base64.b64encode(partner_key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()

    def report(data: bytes, headers: dict[str, str]) -> requests.Response:
        return call(srv, "POST", "/_/secrets/disclose-token", data=data,
                    headers={"Content-Type": "application/json", **headers})

    r = report(body, {})
    assert r.status_code == 400, desc(r)
    assert "not signed" in r.text
    r = report(body, {PARTNER_KEY_ID_HEADER: "k1", PARTNER_SIGNATURE_HEADER: sign(body + b" ")})
    assert r.status_code == 400, desc(r)
    assert "does not verify" in r.text
    r = report(body, {PARTNER_KEY_ID_HEADER: "k1", PARTNER_SIGNATURE_HEADER: "not base64 at all!"})
    assert r.status_code == 400, desc(r)
    r = report(body, {PARTNER_KEY_ID_HEADER: "k2", PARTNER_SIGNATURE_HEADER: sign(body)})
    assert r.status_code == 400, desc(r)
    assert "unknown key identifier" in r.text
    # None of those touched the token.
    r = upload(srv, leaked["token"], project, "1.0", tmp_path)
    assert r.status_code == 200, desc(r)

    mark = sink.mark()
    r = report(body, {PARTNER_KEY_ID_HEADER: "k1", PARTNER_SIGNATURE_HEADER: sign(body)})
    assert r.status_code == 204, desc(r)
    assert r.content == b""

    r = upload(srv, leaked["token"], project, "1.0", tmp_path)
    assert r.status_code == 403, desc(r)
    assert "revoked" in r.text
    r = upload(srv, kept["token"], project, "1.0", tmp_path)
    assert r.status_code == 200, f"an unreported token must keep working: {desc(r)}"

    mail = sink.wait_for(to=acct.email, subject_contains="leaked and was revoked", start=mark)
    assert leaked["hint"] in mail.body and "https://example.test/leak" in mail.body and "test" in mail.body

    r = call(srv, "GET", "/api/account/tokens", acct.session)
    t = {t["id"]: t for t in r.json()["tokens"]}[leaked["id"]]
    assert t["revoked"] is not None
    assert t["revoked_reason"] == "reported as leaked by test (https://example.test/leak)"

    # The same report again: still 204, nothing revoked twice.
    r = report(body, {PARTNER_KEY_ID_HEADER: "k1", PARTNER_SIGNATURE_HEADER: sign(body)})
    assert r.status_code == 204, desc(r)
    leaks = [e for e in events_of(srv, acct.session) if e["kind"] == "token_revoked_leaked"]
    assert len(leaks) == 1, leaks
    assert leaks[0]["actor"] == "disclosure:test"
    assert leaks[0]["details"]["token_id"] == leaked["id"]
    assert leaks[0]["details"]["partner"] == "test"
    assert leaks[0]["details"]["url"] == "https://example.test/leak"
    shows_secret = leaked["token"] in json.dumps(leaks)
    assert not shows_secret, "the event must not record the token"


class KeyServer:
    """A partner's key URL on loopback that counts requests and answers `status` with `body`
    (both may be changed between requests: `serve`). With `content_length=False` the body is
    sent without a length, up to the end of the connection; `sent` counts the body bytes that
    went out before the client hung up."""

    def __init__(self, status: int, body: bytes = b"", *, content_length: bool = True):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.status, self.body, self.content_length = status, body, content_length
        self.requests = self.sent = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                with outer._lock:
                    outer.requests += 1
                    status, body, with_length = outer.status, outer.body, outer.content_length
                time.sleep(0.2)  # a slow partner: concurrent reports arrive while it answers
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if with_length:
                    self.send_header("Content-Length", str(len(body)))
                else:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                try:
                    for i in range(0, len(body), 64 * 1024):
                        chunk = body[i:i + 64 * 1024]
                        self.wfile.write(chunk)
                        with outer._lock:
                            outer.sent += len(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def log_message(self, format, *args):  # noqa: A002
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/keys"

    def serve(self, status: int, body: bytes) -> None:
        with self._lock:
            self.status, self.body = status, body

    def close(self):
        self._httpd.shutdown()


def keys_document(keys: dict[str, object]) -> bytes:
    """A partner's key document, GitHub's format: `{"public_keys": [{"key_identifier", "key"}]}`."""
    return json.dumps({"public_keys": [
        {"key_identifier": kid, "key": partner_pem(key), "is_current": True} for kid, key in keys.items()
    ]}).encode()


def partner_server(make_server, keys_url: str, *, keys_ttl_secs: int | None = None) -> Server:
    root = make_server(start=False).root
    config = root / "partner.toml"
    config.write_text(
        "[[disclosure.partners]]\n"
        'name = "flaky"\n'
        f'key_id_header = "{PARTNER_KEY_ID_HEADER}"\n'
        f'signature_header = "{PARTNER_SIGNATURE_HEADER}"\n'
        f'keys_url = "{keys_url}"\n'
        + (f"keys_ttl_secs = {keys_ttl_secs}\n" if keys_ttl_secs is not None else "")
    )
    s = make_server({"PALISADE_CONFIG": str(config)})
    SERVERS.append(s)
    return s


def signed_report(s: Server, key, key_id: str, data: bytes = b"[]") -> requests.Response:
    signature = base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()
    return call(s, "POST", "/_/secrets/disclose-token", data=data, headers={
        "Content-Type": "application/json", PARTNER_KEY_ID_HEADER: key_id, PARTNER_SIGNATURE_HEADER: signature})


UNAVAILABLE = 'the public keys of partner "flaky" could not be fetched'


@pytest.mark.parametrize("status, body, expected", [
    (500, b"oops", (503, UNAVAILABLE)),
    (404, b"no such page", (503, UNAVAILABLE)),
    (200, b"not json", (503, UNAVAILABLE)),
    (200, b'{"public_keys": []}', (400, "unknown key identifier")),
], ids=["http-500", "http-404", "not-json", "no-such-key"])
def test_anonymous_reports_do_not_make_the_server_refetch_a_failing_key_url(make_server, partner_key, status, body, expected):
    """Issue 12, item 11: while the partner's key URL failed, every anonymous report made the
    server fetch it again (10 reports, 10 fetches). Failures and unknown key ids are cached for
    a minute, and concurrent reports share one fetch. Issue 13: a key URL that fails (an error
    status, a document that is not JSON) makes reports wait (503, saying why), not look forged."""
    import concurrent.futures

    keys = KeyServer(status, body)
    try:
        s = partner_server(make_server, keys.url)

        def report(i: int) -> requests.Response:
            return signed_report(s, partner_key, f"kid-{i % 3}")

        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            answers = list(pool.map(report, range(10)))
        answers += [report(i) for i in range(10)]
        code, text = expected
        assert [r.status_code for r in answers] == [code] * 20, [desc(r) for r in answers if r.status_code != code]
        assert all(text in r.text for r in answers), answers[0].text
        assert keys.requests == 1, f"20 anonymous reports made {keys.requests} fetches of the partner's key URL"
        assert s.get("/healthz").status_code == 200
    finally:
        keys.close()


@pytest.mark.parametrize("content_length", [True, False], ids=["with-length", "without-length"])
def test_an_oversized_partner_key_document_is_refused_unread(make_server, partner_key, content_length):
    """Issue 13: the partner's key document must be read with a bound. A 64 MiB document (with
    a matching Content-Length, or none at all) is refused, and the server stops reading it: far
    less than the whole document leaves the key server before the connection drops."""
    size = 64 * 1024 * 1024
    doc = keys_document({"k1": partner_key})
    body = doc[:-2] + b" " * (size - len(doc)) + doc[-2:]  # valid JSON, padded inside the object
    keys = KeyServer(200, body, content_length=content_length)
    try:
        s = partner_server(make_server, keys.url)
        r = signed_report(s, partner_key, "k1")
        assert r.status_code == 503, desc(r)
        assert UNAVAILABLE in r.text, r.text
        assert keys.requests == 1
        assert keys.sent < size // 4, f"the server read {keys.sent} bytes of a {size}-byte key document"
        assert s.get("/healthz").status_code == 200
        assert "too large" in s.log_text(), "the refusal should be logged"
    finally:
        keys.close()


def test_fetched_partner_keys_expire_so_a_rotated_out_key_stops_verifying(make_server):
    """Issue 13: keys fetched from a partner's key URL never expired, so a key the partner had
    withdrawn went on verifying reports for as long as the server ran. Fetched keys are trusted
    for `keys_ttl_secs`; then the URL is asked again: the withdrawn key is refused and its
    successor accepted. A failed refetch keeps the keys fetched before."""
    old, new = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    keys = KeyServer(200, keys_document({"old": old}))
    try:
        s = partner_server(make_server, keys.url, keys_ttl_secs=2)
        r = signed_report(s, old, "old")
        assert r.status_code == 204, desc(r)
        assert keys.requests == 1

        # The partner rotates: the old key is withdrawn, a new one published.
        keys.serve(200, keys_document({"new": new}))
        time.sleep(2.5)
        r = signed_report(s, old, "old")
        assert r.status_code == 400, f"a withdrawn key still verifies reports: {desc(r)}"
        assert "unknown key identifier" in r.text, r.text
        assert keys.requests == 2
        r = signed_report(s, new, "new")
        assert r.status_code == 204, desc(r)
        assert keys.requests == 2, "the fresh key set answers without another fetch"

        # The key URL fails once the keys have expired: the keys fetched before still verify,
        # and the URL is not asked again at every report.
        keys.serve(500, b"down")
        time.sleep(2.5)
        for _ in range(3):
            r = signed_report(s, new, "new")
            assert r.status_code == 204, desc(r)
        assert keys.requests == 3, keys.requests
        assert "could not fetch the partner's public keys" in s.log_text()
    finally:
        keys.close()


# ---- no secrets in the logs (keep this test last) -----------------------------------------------


def test_no_secrets_in_server_logs(srv):
    found = []
    for s in SERVERS:
        log = s.log_text()
        assert log.strip(), f"{s.name} wrote no log"
        for label, value in SECRETS:
            if value and value in log:
                found.append(f"{label} in the log of {s.name}")
    assert not found, "secrets in server logs: " + "; ".join(sorted(set(found)))
