"""The console's key flow in a real browser (Debian Chromium driven by Playwright)."""

from collections.abc import Iterator

import openai
import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import Browser, BrowserContext, Page

from accounts.models import User
from tests.browser.conftest import WAIT_MS
from tests.conftest import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def session_cookie(live_gateway: LiveServer) -> dict[str, str]:
    """A signed-in session (whatever the login page looks like), as a browser cookie."""
    session = Client()
    session.force_login(User.objects.create_user("browser@example.com", "correct-horse-battery"))
    cookie = session.cookies[settings.SESSION_COOKIE_NAME]
    return {"name": cookie.key, "value": cookie.value, "url": live_gateway.url}


@pytest.fixture
def signed_in(
    live_gateway: LiveServer, session_cookie: dict[str, str], browser: Browser
) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=live_gateway.url)
    context.set_default_timeout(WAIT_MS)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_gateway.url)
    context.add_cookies([session_cookie])
    yield context
    context.close()


def test_create_a_limited_key_copy_it_and_see_only_its_models(
    signed_in: BrowserContext, live_gateway: LiveServer
) -> None:
    page: Page = signed_in.new_page()
    problems: list[str] = []  # script errors and failed requests (CSP refusals included)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "response",
        lambda response: (
            problems.append(f"{response.status} {response.url}")
            if response.status >= 400 and not response.url.endswith("/favicon.ico")
            else None
        ),
    )
    page.on(
        "console",
        lambda message: (
            problems.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )

    page.goto("/keys/")
    page.get_by_role("link", name="New API key").click()
    page.get_by_label("Name").fill("browser key")
    page.get_by_label("Requests per minute").fill("30")
    page.get_by_label("Budget (USD)").fill("5")

    search = page.get_by_placeholder("Search models…")
    search.fill("sonnet 4.5")
    gpt = page.locator('input[name="allowed_models"][value="GPT-4o"]')
    assert not gpt.is_visible()  # filtered out by the search
    page.locator('input[name="allowed_models"][value="Claude Sonnet 4.5"]').check()
    search.fill("gpt-4o")
    gpt.check()
    search.fill("")
    assert page.locator("[data-model-count]").inner_text() == "2 of {} models allowed.".format(
        page.locator(".model-option").count()
    )
    page.get_by_role("button", name="Create key").click()

    reveal = page.locator("#key-reveal")
    reveal.wait_for()
    shown = page.locator("#new-key-secret").inner_text()
    reveal.get_by_role("button", name="Copy").first.click()
    page.get_by_role("button", name="Copied").wait_for()
    secret = page.evaluate("navigator.clipboard.readText()")
    assert secret == shown
    assert secret.startswith("tb-")
    assert secret in page.locator("#snippet-curl").inner_text()

    client = openai.OpenAI(base_url=f"{live_gateway.url}/v1", api_key=secret, max_retries=0)
    assert sorted(model.id for model in client.models.list()) == ["Claude Sonnet 4.5", "GPT-4o"]

    page.goto("/keys/")
    row = page.locator("tbody tr").first
    assert "browser key" in row.inner_text()
    assert "30 RPM" in row.inner_text()
    assert "2 models" in row.inner_text()
    assert "$0.00 of $5.00" in row.inner_text()
    assert secret not in page.content()

    # Revoke it: with htmx, a confirm dialog and the row swapped in place; without, a
    # confirmation page.
    page.on("dialog", lambda dialog: dialog.accept())
    row.get_by_role("link", name="Revoke").click()
    confirm_page = page.get_by_role("button", name="Revoke key")
    page.locator("tr.is-revoked").or_(confirm_page).wait_for()
    if confirm_page.is_visible():
        confirm_page.click()
    page.locator("tr.is-revoked").wait_for()
    with pytest.raises(openai.AuthenticationError):
        client.models.list()
    assert problems == []
