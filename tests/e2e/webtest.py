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
