"""Debian Chromium driven by Playwright against the whole app served by uvicorn in a thread.

The browser opens http://localhost:PORT (WebAuthn refuses 127.0.0.1). Every page must load
without a console error: a Content-Security-Policy violation or a script error fails the test.
"""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from tests.accounts.conftest import client  # noqa: F401 -- clients from addresses of their own
from tests.conftest import REPO, LiveServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts"
# How long a page, a click or an expect() waits for its condition: sized for a 2-core machine
# busy with the rest of the suite (a quiet one answers in well under a second). Playwright's own
# default for expect() is 5 s, which a loaded CI machine has missed.
WAIT_MS = 20_000
expect.set_options(timeout=WAIT_MS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Under .ci/run (TOKENBYTE_REQUIRE_SERVICES=1) a missing browser fails instead.
    if Path(CHROMIUM).exists() or os.environ.get("TOKENBYTE_REQUIRE_SERVICES") == "1":
        return
    reason = f"needs Debian's chromium at {CHROMIUM} (`make browser-deps` installs it)"
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    # Playwright's sync API keeps an event loop running in this thread; Django's ORM calls made
    # by the test itself (reading users, the mail outbox) are still plain synchronous code.
    # Module scope: that loop must be gone before tests that use async_to_sync run.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as driver:
        yield driver
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make browser-deps` installs Debian's chromium")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def console_url(live_gateway: LiveServer) -> str:
    return f"http://localhost:{live_gateway.port}"


def open_page(
    browser: Browser,
    base_url: str,
    *,
    width: int = 1280,
    height: int = 860,
    failed_loads_are_errors: bool = True,
) -> tuple[Page, list[str]]:
    """A page in a context of its own, and the list its console errors and script errors go to
    (without `failed_loads_are_errors`, a resource that failed to load is left out: a tour of
    routes meets 404s and 405s that are the routes' own answers)."""
    context = browser.new_context(
        base_url=base_url, viewport={"width": width, "height": height}, color_scheme="light"
    )
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        failed_load = message.text.startswith("Failed to load resource")
        if message.type == "error" and (failed_loads_are_errors or not failed_load):
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page, errors


@pytest.fixture
def page(browser: Browser, console_url: str) -> Iterator[Page]:
    page, errors = open_page(browser, console_url)
    yield page
    page.context.close()
    assert errors == [], f"browser console errors: {errors}"


def screenshot(page: Page, name: str) -> Path:
    """Saves a full-page screenshot under test-artifacts/ (git-ignored) for people to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
