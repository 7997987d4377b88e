"""Security keys and passkeys (WebAuthn) in the browser, with Chromium's virtual authenticator
(DevTools protocol `WebAuthn.addVirtualAuthenticator`): register a security key and log in with
password and key; register a passkey and log in with it alone; an assertion made on another
origin, or replayed, is refused; a critical project takes a WebAuthn login to change.

The relying-party id must be a host name, so the server's public_url is http://localhost:PORT
and the browser goes there."""

from __future__ import annotations

import http.server
import re
import threading

from distbuilder import WheelBuilder
from support import free_port
from webtest import Audit, make_user, password_login, screenshot

# Runs in a page: asks the authenticator for an assertion with options from the server (binary
# fields in base64url) and returns the answer as the server reads it.
GET_ASSERTION = """
async (options) => {
  const dec = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4)), c => c.charCodeAt(0));
  const enc = (b) => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');
  const pk = options.publicKey;
  pk.challenge = dec(pk.challenge);
  (pk.allowCredentials || []).forEach(c => { c.id = dec(c.id); });
  const c = await navigator.credentials.get({ publicKey: pk });
  const r = c.response;
  return { id: c.id, rawId: enc(c.rawId), type: c.type, extensions: {}, response: {
    clientDataJSON: enc(r.clientDataJSON), authenticatorData: enc(r.authenticatorData),
    signature: enc(r.signature), userHandle: r.userHandle ? enc(r.userHandle) : null } };
}
"""


def webauthn_server(make_server):
    port = free_port()
    srv = make_server(extra_env={"PALISADE_PUBLIC_URL": f"http://localhost:{port}"}, start=False)
    srv.start(port)
    return srv, f"http://localhost:{port}"




def virtual_authenticator(context, pg) -> tuple[object, str]:
    """A USB security key plugged into the browser's tab."""
    cdp = context.new_cdp_session(pg)
    cdp.send("WebAuthn.enable")
    return cdp, plug_in(cdp, "usb")


def plug_in(cdp, transport: str) -> str:
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": transport, "hasResidentKey": True, "hasUserVerification": True,
        "isUserVerified": True, "automaticPresenceSimulation": True,
    }})
    return added["authenticatorId"]




def log_out(pg, base: str) -> None:
    pg.goto(f"{base}/manage/account/")
    pg.click("header nav button:text('Log out')")
    pg.wait_for_url(f"{base}/")


def session_secret(context) -> str:
    found = [c["value"] for c in context.cookies() if c["name"] == "__Host-palisade_session"]
    assert len(found) == 1, context.cookies()
    return found[0]


def last_login_method(srv, session: str) -> str:
    r = srv.api("GET", "/api/account/events", session)
    assert r.status_code == 200, r.text
    logins = [e for e in r.json()["events"] if e["kind"] == "login"]
    return logins[0]["details"]["method"]


def add_key(pg, kind: str, name: str, password: str) -> None:
    pg.check(f"input[name=kind][value={kind}]")
    pg.fill("#webauthn-name", name)
    pg.fill("#webauthn-password", password)
    pg.click("text=Add a security key or passkey")


def test_security_key_then_passkey_logins(make_server, browser, module_clients, tmp_path):
    srv, base = webauthn_server(make_server)
    password = make_user(srv, "keyholder")
    context = browser.new_context(bypass_csp=True)
    pg = context.new_page()
    cdp, authenticator = virtual_authenticator(context, pg)
    audit = Audit(pg)

    try:
        password_login(pg, base, "keyholder", password)
        pg.wait_for_url(f"{base}/manage/account/")

        # A wrong password is refused before the authenticator is asked.
        add_key(pg, "security_key", "yubikey", "wrong password")
        status = pg.locator("form[data-webauthn] [data-webauthn-status]")
        status.wait_for(state="visible")
        assert "password is wrong" in status.inner_text()
        assert cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"] == []

        # A security key: the first second factor, so recovery codes come with it, once.
        add_key(pg, "security_key", "yubikey", password)
        pg.locator("#webauthn-codes").wait_for(state="visible")
        codes = pg.locator("#webauthn-codes li").all_inner_texts()
        assert len(codes) == 10, codes
        creds = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
        assert len(creds) == 1 and creds[0]["rpId"] == "localhost" and not creds[0]["isResidentCredential"], creds
        pg.goto(f"{base}/manage/account/")
        factors = pg.locator("table.factors").inner_text()
        assert "security key" in factors and "yubikey" in factors, factors
        audit("account page with a security key")

        # Log in again: the password, then the key.
        log_out(pg, base)
        password_login(pg, base, "keyholder", password)
        pg.wait_for_url(re.compile(r"/account/login/second-factor/"))
        audit("second factor page")
        pg.click("text=Use a security key or passkey")
        pg.wait_for_url(f"{base}/manage/account/")
        assert last_login_method(srv, session_secret(context)) == "security_key"

        # The same authenticator cannot be registered twice (its credential is excluded).
        add_key(pg, "passkey", "again", password)
        status.wait_for(state="visible")
        assert "already registered" in status.inner_text(), status.inner_text()

        # A passkey on the laptop's own authenticator (the key unplugged): discoverable,
        # user-verifying.
        cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": authenticator})
        laptop = plug_in(cdp, "internal")
        add_key(pg, "passkey", "laptop", password)
        pg.wait_for_url(f"{base}/manage/account/?added=passkey")
        assert "Passkey added" in pg.locator(".notice-ok").inner_text()
        assert "laptop" in pg.locator("table.factors").inner_text()
        creds = cdp.send("WebAuthn.getCredentials", {"authenticatorId": laptop})["credentials"]
        assert len(creds) == 1 and creds[0]["isResidentCredential"], creds
        screenshot(pg, "account-webauthn")

        # Log in with the passkey alone: no user name, no password.
        log_out(pg, base)
        pg.goto(f"{base}/account/login/")
        audit("login page")
        screenshot(pg, "login")
        pg.click("text=Log in with a passkey")
        pg.wait_for_url(f"{base}/manage/account/")
        session = session_secret(context)
        assert last_login_method(srv, session) == "passkey"
        assert "keyholder" in pg.locator("header nav").inner_text()

        # An assertion made on another origin (a look-alike page on another port: same RP id,
        # so the authenticator signs) is refused by the server.
        other = tmp_path / "other"
        other.mkdir()
        (other / "index.html").write_text("<!doctype html><title>look-alike</title><p>hello</p>")
        handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(*a, directory=str(other), **kw)  # noqa: E731
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            begun = srv.api("POST", "/api/login/passkey").json()
            pg.goto(f"http://localhost:{httpd.server_address[1]}/index.html")
            forged = pg.evaluate(GET_ASSERTION, begun["options"])
            r = srv.api("POST", "/api/login/passkey/finish", json={"ceremony": begun["ceremony"], "credential": forged})
            assert r.status_code in (400, 401), r.text
            assert "session" not in r.text and "refused" in r.text and "origin" in r.text, r.text
        finally:
            httpd.shutdown()

        # From the right origin the same steps log in, once: the answer replayed finds nothing.
        pg.goto(f"{base}/account/login/")
        begun = srv.api("POST", "/api/login/passkey").json()
        answer = pg.evaluate(GET_ASSERTION, begun["options"])
        r = srv.api("POST", "/api/login/passkey/finish", json={"ceremony": begun["ceremony"], "credential": answer})
        assert r.status_code == 200 and r.json()["session"].startswith("palsess_"), r.text
        again = srv.api("POST", "/api/login/passkey/finish", json={"ceremony": begun["ceremony"], "credential": answer})
        assert again.status_code == 400 and "already answered" in again.text, again.text
        # Garbage is a clear 400, not a 500.
        junk = srv.api("POST", "/api/login/passkey/finish", json={"ceremony": srv.api("POST", "/api/login/passkey").json()["ceremony"], "credential": {"id": "x"}})
        assert junk.status_code == 400 and "malformed" in junk.text, junk.text

        # A critical project: the owner's token works (they hold a key); a maintainer with only
        # TOTP is refused, by token and by session, until they add a key.
        r = srv.api("POST", "/api/account/tokens", session, json={"description": "ci", "projects": ["crit-demo"]})
        assert r.status_code == 201, r.text
        token = r.json()["token"]
        wheel = WheelBuilder("crit-demo", "1.0").build(tmp_path)
        module_clients.twine_upload(srv, token, wheel)
        srv.cli("project", "critical", "crit-demo")
        assert srv.cli("project", "critical").stdout.split() == ["crit-demo"]
        helper = srv.create_user("totponly")
        assert srv.api("PUT", "/api/projects/crit-demo/roles/totponly", session, json={"role": "maintainer"}).status_code in (200, 201)
        r = srv.api("POST", "/api/projects/crit-demo/releases/1.0/yank", helper["session"], json={"reason": "test"})
        assert r.status_code == 403 and "critical" in r.text and "security key" in r.text, r.text
        # Nor may that TOTP session mint a token (a phished password and code must not get past
        # the policy that way); the administrator's CLI may.
        r = srv.api("POST", "/api/account/tokens", helper["session"], json={"description": "sneaky", "projects": ["crit-demo"]})
        assert r.status_code == 403 and "critical project" in r.text, r.text
        helper_token = srv.create_token("totponly", ["crit-demo"])
        wheel2 = WheelBuilder("crit-demo", "1.1").build(tmp_path)
        out = module_clients.twine_upload(srv, helper_token, wheel2, check=False)
        assert out.returncode != 0 and "critical" in (out.stdout + out.stderr), out.stdout + out.stderr
        # The owner, logged in with a passkey, yanks in the browser.
        pg.goto(f"{base}/manage/project/crit-demo/")
        pg.fill("input[name=reason]", "superseded")
        pg.click("form[action$='/releases/1.0/yank/'] button[type=submit]")
        assert "yanked" in pg.locator("main").inner_text().lower()
        audit.check()
    finally:
        context.close()
