"""Requests made with the openai SDK show up on the dashboard and in the logs without a reload;
one opens in full and the logs export as CSV. Screenshots (light, dark, 390 px) are left in
test-artifacts/."""

import csv
import threading
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from django.conf import settings
from django.db import close_old_connections
from django.test import Client
from playwright.sync_api import Browser, BrowserContext, Page, expect

from accounts.models import User
from billing import tasks
from keys.services import key_mint
from keys.validation import KeySpec
from tests.browser.conftest import WAIT_MS, screenshot
from tests.conftest import LiveServer
from tests.proxy.conftest import fake_openai, openai_upstream  # noqa: F401 -- fixtures

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def metering() -> Iterator[None]:
    """With Redis, what the Celery beat does: drain the usage stream every fraction of a second
    (the task's own body, on a thread). Embedded, the gateway records its usage itself."""
    if not settings.REDIS_URL:
        yield
        return
    stop = threading.Event()

    def drain_forever() -> None:
        while not stop.wait(0.3):
            tasks.usage_drain()
        close_old_connections()

    thread = threading.Thread(target=drain_forever, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=30)


@pytest.fixture
def user(
    live_gateway: LiveServer,
    openai_upstream: object,  # noqa: F811 -- the fixture imported above
    metering: None,
) -> User:
    return User.objects.create_user("watcher@example.com", "correct-horse-battery")


def signed_in(
    browser: Browser, server: LiveServer, user: User, **options: object
) -> BrowserContext:
    session = Client()
    session.force_login(user)
    cookie = session.cookies[settings.SESSION_COOKIE_NAME]
    context = browser.new_context(base_url=server.url, **options)
    context.set_default_timeout(WAIT_MS)
    context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": server.url}])
    return context


def watch(page: Page, problems: list[str]) -> None:
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "console",
        lambda message: problems.append(message.text) if message.type == "error" else None,
    )


def test_requests_appear_live_then_open_one_and_export(
    browser: Browser, live_gateway: LiveServer, user: User, tmp_path: Path
) -> None:
    secret = key_mint(owner=user, spec=KeySpec(name="watched key")).secret
    context = signed_in(browser, live_gateway, user, viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    dashboard, logs = context.new_page(), context.new_page()
    for page in (dashboard, logs):
        watch(page, problems)
    dashboard.goto("/")
    expect(dashboard.locator('[data-stat="requests"]')).to_have_attribute("data-value", "0")
    logs.goto("/logs/")
    expect(logs.get_by_role("heading", name="No requests yet")).to_be_visible()

    live_gateway.wait_for_routing(
        lambda routing: any(routing.upstreams_for(card) for card in routing.cards)
    )
    sdk = openai.OpenAI(base_url=f"{live_gateway.url}/v1", api_key=secret, max_retries=0)
    for _ in range(2):
        sdk.chat.completions.create(model="GPT-4o", messages=[{"role": "user", "content": "Hi"}])
    chunks = sdk.chat.completions.create(
        model="GPT-4o", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    # Neither page is reloaded: each refreshes its own figures every 5 s.
    expect(logs.locator("tr[data-record]")).to_have_count(3, timeout=30_000)
    expect(dashboard.locator('[data-stat="requests"]')).to_have_attribute(
        "data-value", "3", timeout=30_000
    )
    expect(dashboard.locator('[data-breakdown-model="GPT-4o"]')).to_have_attribute(
        "data-requests", "3"
    )
    assert "watched key" in logs.locator("tr[data-record]").first.inner_text()
    assert secret not in logs.content() + dashboard.content()

    with logs.expect_download() as download:
        logs.get_by_role("link", name="Export CSV").click()
    saved = tmp_path / "logs.csv"
    download.value.save_as(saved)
    rows = list(csv.DictReader(saved.open(encoding="utf-8")))
    assert len(rows) == 3
    assert {row["model"] for row in rows} == {"GPT-4o"}
    assert sorted(row["stream"] for row in rows) == ["False", "False", "True"]

    screenshot(dashboard, "dashboard-activity")
    screenshot(logs, "logs")
    logs.locator("tr[data-record] a").first.click()
    expect(logs.locator("[data-event-id]")).to_be_visible()
    expect(logs.locator("tr[data-bucket]").first).to_be_visible()  # the cost, bucket by bucket
    # One try, its answer used, then the answer relayed: the waterfall's two rows.
    expect(logs.locator("tr[data-attempt]")).to_have_count(1)
    expect(logs.locator("tr[data-attempt] [data-credential]")).to_have_text("openai upstream A")
    expect(logs.locator("tr[data-relay]")).to_have_count(1)
    screenshot(logs, "log-detail")
    detail = logs.url
    context.close()

    for name, options in (
        ("dark", {"viewport": {"width": 1280, "height": 900}, "color_scheme": "dark"}),
        ("390", {"viewport": {"width": 390, "height": 844}, "color_scheme": "light"}),
    ):
        other = signed_in(browser, live_gateway, user, **options)
        page = other.new_page()
        watch(page, problems)
        for path, shot in (("/", "dashboard-activity"), ("/logs/", "logs"), (detail, "log-detail")):
            page.goto(path)
            page.locator("[data-stat], tr[data-record], [data-event-id]").first.wait_for()
            # Nothing wider than the screen (at 390 px the tables become cards).
            assert page.evaluate("document.documentElement.scrollWidth <= innerWidth"), path
            screenshot(page, f"{shot}-{name}")
        other.close()
    assert problems == []
