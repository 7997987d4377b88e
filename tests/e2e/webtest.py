"""What the browser tests share: where Chromium and axe-core are, screenshots, and the check that
no injected script ran. The `browser` and `page` fixtures are in conftest.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM = os.environ.get("PALISADE_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
AXE = os.environ.get("PALISADE_TEST_AXE")


def screenshot(pg, name: str) -> None:
    """Saves a full-page screenshot to PALISADE_SCREENSHOT_DIR, when it is set."""
    folder = os.environ.get("PALISADE_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def no_script_ran(pg) -> None:
    assert pg.evaluate("window.__xss") is None, "an injected script ran"
    assert pg.dialogs == []


def serious_accessibility_problems(pg) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now. The page's CSP
    forbids injected scripts, so the page's context must be made with bypass_csp=True."""
    pg.add_script_tag(path=AXE)
    result = pg.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [f"{v['id']} ({v['impact']}): {v['help']}" for v in result["violations"] if v["impact"] in ("serious", "critical")]


def axe_available() -> bool:
    return bool(AXE) and Path(AXE).is_file()


class Audit:
    """axe-core's serious and critical problems, page by page, over one test: call it with a
    name on each page worth checking, then `check()` at the end (so one run shows them all)."""

    def __init__(self, pg):
        self.pg = pg
        self.problems: dict[str, list[str]] = {}

    def __call__(self, name: str) -> None:
        if axe_available():
            bad = serious_accessibility_problems(self.pg)
            if bad:
                self.problems[name] = bad

    def check(self) -> None:
        assert not self.problems, f"axe-core: {self.problems}"


def make_user(srv, name: str) -> str:
    """An account with a verified address and no second factor; its password."""
    from support import strong_password

    password = strong_password(name)
    srv.cli_input(password + "\n", "user", "create", name, "--email", f"{name}@example.test", "--email-verified", "--password-stdin")
    return password


def password_login(pg, base: str, name: str, password: str) -> None:
    """Sends the login page's password form."""
    pg.goto(f"{base}/account/login/")
    pg.fill("#username", name)
    pg.fill("#password", password)
    pg.click("form.stack button[type=submit]")
