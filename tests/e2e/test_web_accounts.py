"""Accounts in the browser (Debian's Chromium, Playwright): a new user's whole path from the
login page to a twine upload with a token made on the account page, with TOTP enrolled from the
page's secret; the session cookie's flags and rotation; CSRF and cross-site form posts refused.

Browser tests use http://localhost:PORT: browsers keep `Secure` cookies there (and WebAuthn
needs a host name)."""

from __future__ import annotations

import re

import requests

from distbuilder import WheelBuilder, file_sha256
from support import totp
from webtest import Audit, make_user, screenshot


def local(srv) -> str:
    return f"http://localhost:{srv.port}"




def log_in(pg, base: str, name: str, password: str) -> None:
    pg.goto(f"{base}/manage/account/")
    assert "/account/login/" in pg.url, "the account page sends strangers to the login page"
    pg.fill("#username", name)
    pg.fill("#password", password)
    pg.click("form.stack button[type=submit]")


def session_cookie(context) -> dict:
    found = [c for c in context.cookies() if c["name"] == "__Host-palisade_session"]
    assert len(found) == 1, context.cookies()
    return found[0]


def test_new_user_enrols_totp_makes_a_token_and_uploads(server, browser, module_clients, tmp_path):
    base = local(server)
    password = make_user(server, "webalice")
    # axe-core is injected into the pages as a script, which their CSP (rightly) forbids; the
    # CSP itself is tested in test_web.py.
    context = browser.new_context(bypass_csp=True)
    pg = context.new_page()
    audit = Audit(pg)

    try:
        # A wrong password is refused on the page, with the API's message.
        pg.goto(f"{base}/account/login/")
        pg.fill("#username", "webalice")
        pg.fill("#password", "not the password")
        with pg.expect_response(lambda r: r.request.method == "POST") as answer:
            pg.click("form.stack button[type=submit]")
        assert answer.value.status == 401
        assert "invalid login or password" in pg.locator(".error").inner_text()
        audit("login page with an error")

        log_in(pg, base, "webalice", password)
        pg.wait_for_url(f"{base}/manage/account/")
        assert "webalice" in pg.locator("header nav").inner_text()
        first = session_cookie(context)
        assert first["secure"] and first["httpOnly"] and first["sameSite"] == "Strict" and first["path"] == "/"
        assert "May publish" in pg.locator("main").inner_text()

        # TOTP, from the secret the page shows beside its QR code.
        pg.fill("#totp-name", "phone")
        pg.fill("#totp-password", password)
        pg.click("text=Add an authenticator app")
        assert pg.locator("img.qr").get_attribute("src").startswith("data:image/svg+xml;base64,")
        audit("TOTP enrolment")
        secret = pg.locator("#totp-secret").inner_text().strip()
        pg.fill("#totp-code", totp(secret))
        pg.click("text=Confirm")
        codes = pg.locator(".codes li").all_inner_texts()
        assert len(codes) == 10, codes
        screenshot(pg, "account")
        audit("account page")
        # Confirming a factor ends other sessions; this one goes on.
        assert session_cookie(context)["value"] == first["value"]

        # A token for one project and one action, shown once.
        pg.fill("#token-description", "laptop upload")
        pg.fill("#token-projects", "web-flow-demo")
        pg.check("input[name=action][value=upload]")
        pg.click("text=Create token")
        token = pg.locator("#token-value").input_value()
        assert re.fullmatch(r"pal_[0-9A-Za-z]{38}", token), token
        assert "web-flow-demo" in pg.locator("table.tokens").inner_text()

        wheel = WheelBuilder("web-flow-demo", "1.0").build(tmp_path)
        module_clients.twine_upload(server, token, wheel)
        pg.goto(f"{base}/project/web-flow-demo/")
        assert file_sha256(wheel) in pg.locator("main").inner_text()

        # Log out: the cookie goes and the account page asks for a login again.
        pg.goto(f"{base}/manage/account/")
        pg.click("header nav button:text('Log out')")
        pg.wait_for_url(f"{base}/")
        assert not [c for c in context.cookies() if c["name"] == "__Host-palisade_session"]
        pg.goto(f"{base}/manage/account/")
        assert "/account/login/" in pg.url

        # Logging in again takes the TOTP code, and makes a new session id.
        pg.fill("#username", "webalice")
        pg.fill("#password", password)
        pg.click("form.stack button[type=submit]")
        pg.wait_for_url(re.compile(r"/account/login/second-factor/"))
        audit("second factor")
        pg.fill("#code", totp(secret, offset=1))
        pg.click("text=Verify")
        pg.wait_for_url(f"{base}/manage/account/")
        assert session_cookie(context)["value"] not in (first["value"], "")
        audit.check()
    finally:
        context.close()


def test_forms_from_other_sites_or_without_their_token_are_refused(server, browser):
    base = local(server)
    password = make_user(server, "webbob")
    context = browser.new_context()
    pg = context.new_page()
    try:
        log_in(pg, base, "webbob", password)
        pg.wait_for_url(f"{base}/manage/account/")
        cookie = session_cookie(context)["value"]
        csrf = pg.locator("input[name=csrf]").first.input_value()
    finally:
        context.close()
    jar = {"__Host-palisade_session": cookie}
    form = {"description": "x", "projects": "", "expires_in": ""}
    post = lambda data, **headers: requests.post(f"{base}/manage/account/tokens/", data=data, cookies=jar, headers=headers, allow_redirects=False, timeout=30)
    r = post(form)
    assert r.status_code == 403 and "security token" in r.text
    r = post({**form, "csrf": "0" * 32})
    assert r.status_code == 403
    r = post({**form, "csrf": csrf}, Origin="http://evil.example")
    assert r.status_code == 403 and "another site" in r.text
    r = post({**form, "csrf": csrf}, **{"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    # From this site, with its token, the form reaches the operation, whose own rules answer:
    # tokens need a second factor (the API's policy, word for word).
    r = post({**form, "csrf": csrf}, Origin=base)
    assert r.status_code == 403 and "two-factor authentication is required to create API tokens" in r.text
    # The browser's session is an API session: enrol TOTP through the API with it, then the same
    # form makes a token, shown once.
    server.enrol_totp("webbob", cookie, password)
    r = post({**form, "csrf": csrf}, Origin=base)
    assert r.status_code == 200 and 'id="token-value"' in r.text, r.text
    # The login form checks its double-submit token too.
    r = requests.post(f"{base}/account/login/", data={"username": "webbob", "password": password}, allow_redirects=False, timeout=30)
    assert r.status_code == 403
    # A page with account data is never cached.
    r = requests.get(f"{base}/manage/account/", cookies=jar, timeout=30)
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"


def test_owners_yank_and_manage_collaborators_and_publishers(server, browser, module_clients, tmp_path):
    base = local(server)
    acct = server.create_user("webdave")
    server.create_user("webcarol", two_factor=False)
    token = server.create_token("webdave")
    wheels = [WheelBuilder("web-managed", v).build(tmp_path / v) for v in ("1.0", "2.0")]
    module_clients.twine_upload(server, token, *wheels)
    context = browser.new_context(bypass_csp=True)
    pg = context.new_page()
    try:
        log_in(pg, base, "webdave", acct["password"])
        pg.wait_for_url(re.compile(r"/account/login/second-factor/"))
        # Enrolment used the current time step; the next one is within the accepted skew.
        pg.fill("#code", totp(acct["totp_secret"], offset=1))
        pg.click("text=Verify")
        pg.wait_for_url(f"{base}/manage/account/")
        pg.goto(f"{base}/manage/projects/")
        rows = [r.split() for r in pg.locator("table.list tbody tr").all_inner_texts()]
        assert [r[:2] for r in rows] == [["web-managed", "owner"]], rows
        pg.click("a:text-is('web-managed')")
        pg.wait_for_url(f"{base}/manage/project/web-managed/")

        # Yank 2.0 with a reason: installers and the public page see it; then un-yank.
        pg.fill("#reason-1", "broken on Windows")
        pg.click("text=Yank 2.0")
        assert "Release 2.0 yanked" in pg.locator(".notice-ok").inner_text()
        assert server.simple_json("web-managed").json()["files"][1]["yanked"] == "broken on Windows"
        screenshot(pg, "manage-project")
        audit = Audit(pg)
        audit("manage project")
        audit.check()
        pg.goto(f"{base}/project/web-managed/2.0/")
        assert "broken on Windows" in pg.locator(".banner-yanked").inner_text()
        pg.goto(f"{base}/manage/project/web-managed/")
        pg.click("text=Un-yank 2.0")
        assert "no longer yanked" in pg.locator(".notice-ok").inner_text()
        assert not server.simple_json("web-managed").json()["files"][1]["yanked"]

        # Collaborators: add a maintainer, remove them; the last owner cannot leave.
        pg.fill("#role-user", "webcarol")
        pg.select_option("#role-role", "maintainer")
        pg.click("text=Add or change role")
        assert "webcarol is now maintainer" in pg.locator(".notice-ok").inner_text()
        assert "webcarol" in pg.locator("section[aria-labelledby=roles] table").inner_text()
        pg.click("text=Remove webcarol")
        assert "webcarol no longer has a role" in pg.locator(".notice-ok").inner_text()
        with pg.expect_response(lambda r: r.request.method == "POST") as answer:
            pg.click("text=Remove webdave")
        assert answer.value.status >= 400
        assert "owner" in pg.locator(".error").inner_text()

        # A trusted publisher, added and removed.
        pg.fill("#pub-repo", "acme/web-managed")
        pg.fill("#pub-workflow", "release.yml")
        pg.click("text=Add publisher")
        assert "Trusted publisher added" in pg.locator(".notice-ok").inner_text()
        assert "acme/web-managed" in pg.locator("section[aria-labelledby=publishers]").inner_text()
        pg.click("section[aria-labelledby=publishers] button:text('Remove')")
        assert "removed" in pg.locator(".notice-ok").inner_text()
        assert "None: uploads need an API token" in pg.locator("section[aria-labelledby=publishers]").inner_text()
        # A GitLab pipeline and a custom issuer's claims (a bad claim line is refused clearly).
        pg.click("text=Add a GitLab CI pipeline")
        pg.fill("#gl-project", "acme/group/web-managed")
        pg.click("text=Add GitLab publisher")
        assert "Trusted publisher added" in pg.locator(".notice-ok").inner_text()
        assert "acme/group/web-managed" in pg.locator("section[aria-labelledby=publishers]").inner_text()
        pg.click("text=Add another OIDC issuer")
        pg.fill("#custom-issuer", "https://ci.example.org")
        pg.fill("#custom-claims", "repository acme/web-managed")
        pg.click("text=Add issuer publisher")
        assert "not name=value" in pg.locator(".error").inner_text()

        # Settings: require attestations, then lift it; the history shows every change above.
        pg.check("input[name=require_attestations]")
        pg.click("text=Save settings")
        assert "need a valid attestation" in pg.locator(".notice-ok").inner_text()
        assert pg.locator("input[name=require_attestations]").is_checked()
        pg.uncheck("input[name=require_attestations]")
        pg.click("text=Save settings")
        assert "no longer need an attestation" in pg.locator(".notice-ok").inner_text()
        history = pg.locator("section[aria-labelledby=history]").inner_text()
        for kind in ("release_yanked", "role_changed", "publisher_added", "project_attestation_policy_changed"):
            assert kind in history, (kind, history)
    finally:
        context.close()
    # A user with no role is turned away by the API's own authorization.
    carol = server.login("webcarol")
    r = requests.get(f"{base}/manage/project/web-managed/", cookies={"__Host-palisade_session": carol}, timeout=30)
    assert r.status_code == 403
