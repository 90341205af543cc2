"""The dashboard's getting-started checklist ticks from what the project records: a usable key,
and a request through one (the key's last use, as the gateway records it)."""

import re
from datetime import timedelta

import openai
import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from accounts import selectors
from accounts.models import User
from billing import tasks
from keys.services import key_last_used_record, key_mint, key_revoke
from keys.validation import KeySpec
from proxy.services import catalog_sync
from tests.conftest import LiveServer
from tests.proxy.conftest import fake_openai, openai_upstream  # noqa: F401 -- fixtures


def step_state(page: str, title: str) -> str:
    """'done' or 'to do': the checklist item titled `title` as the dashboard shows it."""
    items = re.findall(r"<li\b.*?</li>", page, flags=re.DOTALL)
    item = next(item for item in items if f"<strong>{title}</strong>" in item)
    match = re.search(r'class="check[^"]*"[^>]*aria-label="([^"]+)"', item)
    assert match, item
    return match.group(1)


def dashboard(client: Client, user: User) -> str:
    client.force_login(user)
    return client.get("/").content.decode()


@pytest.fixture
def user(db: None) -> User:
    catalog_sync()
    return User.objects.create_user("starter@example.com", "pw-123456789-long")


def test_two_keys_tick_create_an_api_key_and_stop_offering_the_first_one(
    client: Client, user: User
) -> None:
    for name in ("backend", "cron"):
        key_mint(owner=user, spec=KeySpec(name=name))
    page = dashboard(client, user)
    assert step_state(page, "Create an API key") == "done"
    assert "You have 2 active keys." in page
    assert "Create your first API key" not in page
    assert 'href="/keys/new/">Create key</a>' not in page  # the step's button is gone
    assert step_state(page, "Send your first request") == "to do"
    assert "No requests yet" in page


@pytest.mark.usefixtures("openai_upstream")  # the strict OpenAI fake behind "GPT-4o"
def test_a_request_through_a_key_ticks_send_your_first_request(
    client: Client, transactional_db: None
) -> None:
    user = User.objects.create_user("caller@example.com", "pw-123456789-long")
    secret = key_mint(owner=user, spec=KeySpec(name="app")).secret
    assert step_state(dashboard(client, user), "Send your first request") == "to do"

    with LiveServer() as server:
        server.wait_for_routing(
            lambda routing: any(routing.upstreams_for(card) for card in routing.cards)
        )
        sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key=secret, max_retries=0)
        reply = sdk.chat.completions.create(
            model="GPT-4o", messages=[{"role": "user", "content": "Hello!"}]
        )
        assert reply.choices[0].message.content
    # The gateway records last use in batches (about once a minute); stopping it flushes them.
    if settings.REDIS_URL:  # its usage event waits in the stream for the Celery task's drain
        tasks.usage_drain()

    page = dashboard(client, user)
    assert step_state(page, "Send your first request") == "done"
    assert "Your keys last served a request" in page
    # The activity is the request's own figures now, not a note that keys are in use.
    assert 'data-stat="requests" data-value="1"' in page
    assert "No requests yet" not in page


def test_the_selector_follows_the_keys_through_their_life(user: User) -> None:
    activity = selectors.Activity

    def state() -> tuple[list[bool], str]:
        methods = selectors.user_sign_in_methods(user=user)
        started = selectors.user_getting_started(user=user, methods=methods)
        return [step.done for step in started.steps], started.activity

    # Email (none verified), key, request, 2FA.
    assert state() == ([False, False, False, False], activity.NO_KEYS)
    minted = key_mint(owner=user, spec=KeySpec(name="one"))
    assert state() == ([False, True, False, False], activity.UNUSED)
    key_revoke(key=minted.key)
    assert state() == ([False, False, False, False], activity.NO_ACTIVE_KEYS)
    key_mint(owner=user, spec=KeySpec(name="expired", expires_at=timezone.now()))
    assert state() == ([False, False, False, False], activity.NO_ACTIVE_KEYS)
    # A request made before the key was revoked still counts as the first request.
    key_last_used_record(used={minted.key.pk: timezone.now() - timedelta(minutes=1)})
    assert state() == ([False, False, True, False], activity.USED)
    key_mint(owner=user, spec=KeySpec(name="two"))
    assert state() == ([False, True, True, False], activity.USED)


def test_the_next_step_is_the_one_primary_button(user: User, client: Client) -> None:
    methods = selectors.user_sign_in_methods(user=user)
    started = selectors.user_getting_started(user=user, methods=methods)
    assert [step.primary for step in started.steps] == [True, False, False, False]
    key_mint(owner=user, spec=KeySpec(name="one"))
    page = dashboard(client, user)
    assert 'btn-primary btn-sm" href="/accounts/email/">Verify</a>' in page
    assert "See the snippets" in page  # a key exists: the snippets are the way to a request
