"""Fixtures for the Palisade end-to-end tests.

The binary is `$PALISADE_BIN`, else `<repo>/target/debug/palisade`; it is copied once per
session so a rebuild during the run cannot swap it mid-test. Set `PALISADE_BIN_WAIT=SECONDS`
to wait for the binary to appear. Each module gets its own server and data dir (`server`
fixture); tests whose state would leak make their own with `make_server`. When a test fails,
the log lines every server wrote during it are printed after the traceback.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support import ALL_SERVERS, Clients, Server  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
LOG_TAIL_LINES = 400


def _binary_path() -> Path:
    env = os.environ.get("PALISADE_BIN")
    return Path(env) if env else REPO_ROOT / "target" / "debug" / "palisade"


@pytest.fixture(scope="session")
def palisade_bin(tmp_path_factory) -> Path:
    path = _binary_path()
    deadline = time.monotonic() + float(os.environ.get("PALISADE_BIN_WAIT", "0"))
    while not (path.is_file() and os.access(path, os.X_OK)):
        if time.monotonic() >= deadline:
            pytest.fail(f"palisade binary not found at {path} (build it, or set PALISADE_BIN)", pytrace=False)
        time.sleep(2)
    copy = tmp_path_factory.mktemp("bin") / "palisade"
    shutil.copy2(path, copy)
    return copy


@pytest.fixture(scope="module")
def server(palisade_bin, tmp_path_factory, request):
    """A fresh server and data dir shared by the tests of one module."""
    name = request.module.__name__.rsplit(".", 1)[-1]
    srv = Server(palisade_bin, tmp_path_factory.mktemp(f"srv-{name}"), name).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def sink():
    """An in-process SMTP server that keeps every mail Palisade sends (`sink.env()` points a
    server at it)."""
    from smtp_sink import SmtpSink

    s = SmtpSink().start()
    yield s
    s.stop()


@pytest.fixture
def make_server(palisade_bin, tmp_path):
    """Factory for servers owned by one test: make_server(extra_env={...})."""
    made: list[Server] = []

    def make(extra_env: dict[str, str] | None = None, start: bool = True) -> Server:
        srv = Server(palisade_bin, tmp_path / f"srv{len(made)}", f"test-server-{len(made)}", extra_env)
        made.append(srv)
        return srv.start() if start else srv

    yield make
    for srv in made:
        srv.stop()


@pytest.fixture(scope="module")
def module_clients(tmp_path_factory) -> Clients:
    """twine/pip/uv runner for module-scoped setup (its own HOME and caches)."""
    return Clients(tmp_path_factory.mktemp("clients"))


@pytest.fixture
def clients(tmp_path) -> Clients:
    """twine/pip/uv runner with a HOME and caches of this test only."""
    return Clients(tmp_path / "clients")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def pytest_sessionfinish(session, exitstatus):
    # A server whose fixture never got to tear down (interrupted run) must not outlive pytest.
    for srv in ALL_SERVERS:
        srv.kill9()


@pytest.fixture(autouse=True)
def _dump_server_logs_on_failure(request):
    offsets = {id(s): s.log_size() for s in ALL_SERVERS}
    yield
    failed = any(
        getattr(request.node, f"rep_{when}", None) is not None and getattr(request.node, f"rep_{when}").failed
        for when in ("setup", "call")
    )
    if not failed:
        return
    for srv in ALL_SERVERS:
        start = offsets.get(id(srv), 0)
        if srv.log_size() <= start:
            continue
        lines = srv.log_text(start).splitlines()
        cut = len(lines) - LOG_TAIL_LINES
        if cut > 0:
            lines = [f"... ({cut} earlier lines omitted)"] + lines[cut:]
        sys.stderr.write(
            f"\n----- palisade log ({srv.name}, {srv.log_path}) during this test -----\n"
            + "\n".join(lines)
            + "\n----- end of palisade log -----\n"
        )


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, driven by Playwright (skips, saying why, without either)."""
    from webtest import CHROMIUM

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (scripts/test installs it from tests/e2e/requirements.txt)")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (scripts/test installs Debian's chromium package)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A page in a fresh browser context, recording any dialog a script opens (`page.dialogs`)."""
    context = browser.new_context()
    pg = context.new_page()
    dialogs: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.dialogs = dialogs
    yield pg
    context.close()
