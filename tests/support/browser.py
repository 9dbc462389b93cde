"""Browser tests' helpers: Debian's chromium under Playwright, an app served in a thread, and
the screenshot folder (artifacts/screenshots/, kept by CI as artifacts)."""

from __future__ import annotations

import difflib
import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hotline import stack
from hotline.demo_seed import DEMO_PASSWORD
from tests.support.settings import REPO

CHROMIUM = "/usr/bin/chromium"
# Debian's chromium, never a downloaded browser; no network beyond the page under test
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOTS = REPO / "artifacts" / "screenshots"
VIEWPORT = {"width": 1440, "height": 1000}
# how long an expect(...) retries: Playwright's 5 s default was too short for a page whose
# server shares two cores with a whole `make test` (an agent's state after login, a button's
# state after a click, seen failing on a clean clone); a failure still names what it waited for
EXPECT_TIMEOUT_MS = 15_000


def require_chromium() -> str:
    """The browser's path; a missing chromium fails the test (install.sh installs it)."""
    path = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    assert path, "chromium is not installed: run `sh scripts/install.sh` (it installs it)"
    return path


@contextmanager
def browser() -> Iterator[Any]:
    """A headless chromium under Playwright (sync API), closed at the end."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    exe = require_chromium()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def login(page: Any, base_url: str, user: str, seat: str | None = None) -> None:
    """Sign in on the desktop's login page as a demo staff member (at a seat, for an agent)."""
    page.goto(f"{base_url}/")
    page.get_by_test_id("login-user").fill(user)
    page.get_by_test_id("login-password").fill(DEMO_PASSWORD)
    if seat:
        page.get_by_test_id("login-seat").fill(seat)
    page.get_by_test_id("login-submit").click()


def _utf16(text: str) -> int:
    """The length of `text` as the browser counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def edit_text(page: Any, test_id: str, new: str) -> None:
    """Change a text box's text to `new` as a person editing it does: each part that differs
    is selected and typed over (or deleted), the rest left as it is. Playwright's fill()
    replaces the whole text with one insertText, which Chromium took 7-11 s for a 10 KB
    multi-line flow on an idle 2-core machine, and over the 10 s action timeout under load
    (a clean-clone run failed so); a few typed lines take a fraction of a second."""
    from playwright.sync_api import expect

    box = page.get_by_test_id(test_id)
    old = box.input_value()
    box.focus()
    ops = difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()
    # from the end, so that the offsets of the parts before stay as they were
    for tag, i1, i2, j1, j2 in reversed(ops):
        if tag == "equal":
            continue
        a, b = _utf16(old[:i1]), _utf16(old[:i2])
        box.evaluate("(el, [a, b]) => el.setSelectionRange(a, b)", [a, b])
        if j2 > j1:
            page.keyboard.insert_text(new[j1:j2])
        else:
            page.keyboard.press("Delete")
    expect(box).to_have_value(new)


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run an ASGI app with uvicorn in a thread on a free loopback port; yield its base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="test-uvicorn", daemon=True)
    thread.start()
    # the project's own condition-with-deadline wait, as for every other service under test
    stack.wait_until(lambda: server.started or not thread.is_alive(), 15, "uvicorn to start",
                     interval=0.02)
    assert thread.is_alive(), "uvicorn died on start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()

