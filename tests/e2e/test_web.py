"""The web interface in a real browser: Debian's Chromium driven by Playwright for Python.

Projects are uploaded with the real twine, then read as a visitor would: the start page, search,
project and release pages. Every user-controlled string carries a script payload, and the tests
assert that none runs and that each is shown as text; every page carries the security headers;
axe-core finds no serious or critical accessibility violation on any page type.

Needs Chromium (`PALISADE_TEST_CHROMIUM`, else /usr/bin/chromium) and the `playwright` package;
`scripts/test` installs both, and axe-core (`PALISADE_TEST_AXE`: the path of axe.min.js) from the
npm registry. Without them the browser tests skip, saying why. Screenshots go to
`PALISADE_SCREENSHOT_DIR` (scripts/test: `<target>/screenshots`).
"""

from __future__ import annotations

import re

import pytest
import requests

from distbuilder import WheelBuilder, file_sha256
from webtest import axe_available, no_script_ran, screenshot, serious_accessibility_problems

PAYLOAD = '<script>window.__xss=(window.__xss||0)+1</script><img src=x onerror="window.__xss=(window.__xss||0)+1">'

DESCRIPTION = f"""# Widgets for the web

A **markdown** description with [a link](https://example.org/docs) and a table:

| a | b |
|---|---|
| 1 | 2 |

{PAYLOAD}

[click me](javascript:window.__xss=1)

<a href="https://example.org" onclick="window.__xss=1">handler</a>
"""


@pytest.fixture(scope="module")
def site(server, module_clients, tmp_path_factory):
    """A server with three projects: one with a Markdown description and script payloads in
    every field, one with a yanked release, one found only by its summary."""
    config = tmp_path_factory.mktemp("web-config") / "palisade.toml"
    config.write_text(
        "[security_txt]\n"
        'contact = ["mailto:security@example.test", "https://example.test/report"]\n'
        'expires = "2030-01-01T00:00:00Z"\n'
        'policy = "https://example.test/disclosure"\n'
    )
    server.stop()
    server.env["PALISADE_CONFIG"] = str(config)
    server.start()
    server.create_user("webowner")
    token = server.create_token("webowner")
    out = tmp_path_factory.mktemp("web-dists")
    files = {}
    evil = WheelBuilder(
        "web-widgets", "1.0",
        summary=f"Widgets {PAYLOAD}",
        extra_headers=[
            ("Description-Content-Type", "text/markdown; charset=UTF-8"),
            ("Project-URL", f"Source, https://example.org/src"),
            ("Project-URL", "Evil, javascript:window.__xss=1"),
            ("Keywords", f"web,{PAYLOAD}"),
            ("Author", f"Mallory {PAYLOAD}"),
            ("License", "MIT"),
        ],
        description=DESCRIPTION,
        requires_python=">=3.9",
    )
    files["widgets"] = evil.build(out)
    for version in ("1.0", "2.0"):
        files[f"yanked-{version}"] = WheelBuilder("web-old-thing", version, summary="An old thing").build(out / version)
    files["summary-only"] = WheelBuilder("unrelated-name", "0.1", summary="Renders widgets quickly").build(out)
    module_clients.twine_upload(server, token, *files.values())
    session = server.accounts["webowner"]["session"]
    r = server.api("POST", "/api/projects/web-old-thing/releases/2.0/yank", session, json={"reason": f"broken {PAYLOAD}"})
    assert r.status_code == 200, r.text
    return {"server": server, "files": files}


def test_project_page_shows_release_files_and_hashes(site, page):
    srv = site["server"]
    page.goto(f"{srv.url}/project/web-widgets/")
    assert page.title().startswith("web-widgets 1.0")
    assert page.locator("h1").first.inner_text().startswith("web-widgets")
    # The description is rendered Markdown: a heading, a table, a safe link.
    assert page.locator(".description h1").inner_text() == "Widgets for the web"
    assert page.locator(".description table td").first.inner_text() == "1"
    assert page.locator('.description a[href="https://example.org/docs"]').count() == 1
    # The install command names this index and the exact release.
    assert page.locator("#install-cmd").input_value() == f"pip install --index-url {srv.url}/simple/ web-widgets==1.0"
    wheel = site["files"]["widgets"]
    body = page.locator("main").inner_text()
    assert wheel.name in body and file_sha256(wheel) in body
    assert "Malware scan: no findings" in body
    assert "Provenance: none" in body
    assert "Requires Python" in body and ">=3.9" in body and "MIT" in body
    # The file link downloads the very bytes uploaded.
    href = page.locator(f'.file h3 a:text-is("{wheel.name}")').get_attribute("href")
    assert requests.get(srv.url + href, timeout=30).content == wheel.read_bytes()
    no_script_ran(page)
    screenshot(page, "project")


def test_script_payloads_are_shown_as_text_and_never_run(site, page):
    srv = site["server"]
    page.goto(f"{srv.url}/project/web-widgets/")
    main = page.locator("main").inner_text()
    # Escaped, not dropped: the summary, author and keywords show the payload as text.
    assert f"Widgets {PAYLOAD}" in main
    assert f"Mallory {PAYLOAD}" in main
    # The description's raw HTML is sanitized away; its javascript: link is not a link.
    html = page.locator(".description").inner_html().lower()
    for bad in ("<script", "onerror", "onclick", "javascript:"):
        assert bad not in html, f"{bad} reached the page: {html}"
    assert page.locator('a[href^="javascript:"]').count() == 0
    assert "Evil: javascript:window.__xss=1" in main, "a non-http project URL is shown as text"
    page.goto(f"{srv.url}/project/web-old-thing/2.0/")
    assert f"broken {PAYLOAD}" in page.locator("main").inner_text()
    page.goto(f"{srv.url}/search/?q=" + requests.utils.quote(PAYLOAD))
    assert PAYLOAD in page.locator("h1").inner_text()
    no_script_ran(page)


def test_yanked_release_is_marked_with_its_reason(site, page):
    srv = site["server"]
    page.goto(f"{srv.url}/project/web-old-thing/")
    # The latest release skips yanked ones (PyPI's rule): the page is about 1.0, and the history
    # lists 2.0 as yanked, with its reason.
    assert page.locator("h1 .version").inner_text() == "1.0"
    history = page.locator(".history").inner_text()
    assert re.search(r"2\.0.*yanked: broken", history), history
    page.goto(f"{srv.url}/project/web-old-thing/2.0/")
    banner = page.locator(".banner-yanked").inner_text()
    assert "This release has been yanked" in banner and "broken" in banner
    screenshot(page, "yanked")


def test_start_page_and_search(site, page):
    srv = site["server"]
    page.goto(f"{srv.url}/")
    names = page.locator(".card-name").all_inner_texts()
    assert set(names) == {"web-widgets", "web-old-thing", "unrelated-name"}, names
    screenshot(page, "home")
    page.fill("#home-q", "widgets")
    page.press("#home-q", "Enter")
    page.wait_for_url(re.compile(r"/search/\?q=widgets"))
    found = page.locator(".card-name").all_inner_texts()
    # The name match first, then the project whose summary mentions it.
    assert found == ["web-widgets", "unrelated-name"], found
    screenshot(page, "search")
    page.goto(f"{srv.url}/search/?q=no-such-thing-anywhere")
    assert "No project matches" in page.locator("main").inner_text()
    # The metadata's keys and descriptions are not searched: only names, summaries, keywords.
    for query in ("summary", "requires_python", "table"):
        page.goto(f"{srv.url}/search/?q={query}")
        assert page.locator(".card-name").count() == 0, query
    page.goto(f"{srv.url}/search/?q=web,")
    assert page.locator(".card-name").all_inner_texts() == ["web-widgets"], "found by its keywords"



def test_unknown_pages_and_spellings(site):
    srv = site["server"]
    r = srv.get("/project/Web_Widgets/")
    assert r.status_code == 301 and r.headers["Location"] == "/project/web-widgets/"
    r = srv.get("/project/web-widgets")
    assert r.status_code == 301 and r.headers["Location"] == "/project/web-widgets/"
    for path in ("/project/no-such-project/", "/project/web-widgets/9.9/", "/project/web-widgets/not a version/"):
        r = srv.get(path)
        assert r.status_code == 404, path
        assert r.headers["Content-Type"].startswith("text/html") and "Not found" in r.text
    r = srv.get("/search/?q=" + "x" * 201)
    assert r.status_code == 400 and "at most 200 characters" in r.text


def test_security_headers_on_every_page(site):
    srv = site["server"]
    for path in ("/", "/search/?q=web", "/project/web-widgets/", "/project/web-widgets/1.0/", "/project/nope/",
                 "/.well-known/security.txt", "/static/palisade.css"):
        r = srv.get(path)
        csp = r.headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, (path, csp)
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, (path, csp)
        assert r.headers.get("X-Content-Type-Options") == "nosniff", path
        assert r.headers.get("Referrer-Policy"), path
    # A cached page answers If-None-Match, and gzip when asked.
    r = srv.get("/project/web-widgets/", headers={"Accept-Encoding": "gzip"})
    assert r.headers.get("Content-Encoding") == "gzip" and "web-widgets" in r.text
    assert srv.get("/project/web-widgets/", headers={"If-None-Match": r.headers["ETag"]}).status_code == 304


def test_security_txt(site, make_server):
    srv = site["server"]
    r = srv.get("/.well-known/security.txt")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    lines = r.text.splitlines()
    assert lines[:3] == ["Contact: mailto:security@example.test", "Contact: https://example.test/report", "Expires: 2030-01-01T00:00:00Z"]
    assert "Policy: https://example.test/disclosure" in lines
    # Without the section there is no file.
    assert make_server().get("/.well-known/security.txt").status_code == 404


def test_pages_fit_a_phone(site, browser):
    srv = site["server"]
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    pg = context.new_page()
    try:
        for path in ("/", "/project/web-widgets/", "/search/?q=web"):
            pg.goto(srv.url + path)
            width = pg.evaluate("document.documentElement.scrollWidth")
            assert width <= 376, f"{path} scrolls sideways on a phone: {width}px"
        screenshot(pg, "project-phone")
    finally:
        context.close()


def test_no_serious_accessibility_violations(site, browser):
    if not axe_available():
        pytest.skip("axe-core is not installed (scripts/test fetches it from the npm registry; PALISADE_TEST_AXE)")
    srv = site["server"]
    # axe is injected as a script: the page's own CSP (rightly) forbids that, so this context
    # bypasses it. Nothing else is different.
    context = browser.new_context(bypass_csp=True)
    pg = context.new_page()
    try:
        problems = {}
        for path in ("/", "/search/?q=widgets", "/project/web-widgets/", "/project/web-old-thing/2.0/", "/project/nope/"):
            pg.goto(srv.url + path)
            bad = serious_accessibility_problems(pg)
            if bad:
                problems[path] = bad
        assert not problems, problems
    finally:
        context.close()
