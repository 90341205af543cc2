"""Body logging in the console: the switch on /settings/ (off by default, CSRF-protected, htmx
or plain POST, reaching the keys' cache entries), /logs/<id>/ showing a request's stored bodies
(escaped, pretty-printed, truncation noted, a stream re-assembled) or why there are none, and
the logs' search finding prompt and answer text, never in another account's bodies."""

import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

import pytest
from django.test import Client

from accounts.models import User
from billing.bodies import CapturedBodies, Excerpt
from billing.body_log import usage_bodies_store
from billing.body_models import UsageBody
from billing.events import UsageEvent
from billing.services import usage_events_record
from keys.cache import key_cache_entry
from keys.models import ApiKey
from keys.services import key_mint
from keys.validation import KeySpec
from proxy.gateway.auth.policy import KeyPolicy
from tests.billing.charges import usage_event

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def alice(client: Client) -> User:
    user = User.objects.create_user("alice@example.com", "pw-123456789-long")
    client.force_login(user)
    return user


@pytest.fixture
def bob() -> User:
    return User.objects.create_user("bob@example.com", "pw-123456789-long")


def call(account: User, request: str, response: str, **changes: Any) -> UsageEvent:
    """A recorded call with its stored bodies."""
    limit = changes.pop("limit", 32768)
    event = usage_event(account_id=account.pk, cost="0.001", started_at=NOW)
    event = dataclasses.replace(event, **changes)
    usage_events_record(events=[event])
    raw_request, raw_response = request.encode(), response.encode()
    usage_bodies_store(
        bodies=[
            CapturedBodies(
                event_id=event.event_id,
                account_id=account.pk,
                started_us=round(event.started_at * 1_000_000),
                request=Excerpt.of(raw_request, len(raw_request), limit),
                response=Excerpt.of(raw_response, len(raw_response), limit),
                status=event.status,
            )
        ]
    )
    return event


def chat(prompt: str) -> str:
    return json.dumps({"model": "GPT-4o", "messages": [{"role": "user", "content": prompt}]})


def answer(text: str) -> str:
    return json.dumps({"id": "chatcmpl-1", "choices": [{"message": {"content": text}}]})


def csrf_token(page: str) -> str:
    section = page[page.index('id="body-logging"') :]
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', section)
    assert match is not None
    return match.group(1)


def test_the_switch_is_off_by_default_and_needs_its_csrf_token(alice: User) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    page = browser.get("/settings/").content.decode()
    assert 'data-body-logging="off"' in page
    assert "Turn on body logging" in page
    assert "32.0\xa0KB" in page  # the operator's limit, and the bodies' own retention
    assert "for 7 days" in page
    refused = browser.post("/settings/body-logging/", {"log_bodies": "on"})
    assert refused.status_code == HTTPStatus.FORBIDDEN
    alice.refresh_from_db()
    assert alice.log_bodies is False
    done = browser.post(
        "/settings/body-logging/", {"log_bodies": "on", "csrfmiddlewaretoken": csrf_token(page)}
    )
    assert done.status_code == HTTPStatus.FOUND
    assert done["Location"] == "/settings/#body-logging"
    alice.refresh_from_db()
    assert alice.log_bodies is True
    page = browser.get("/settings/").content.decode()
    assert 'data-body-logging="on"' in page
    assert "Body logging is on" in page  # the message after a plain POST
    assert "Turn off body logging" in page


def test_htmx_gets_the_section_back_and_a_bad_value_changes_nothing(
    client: Client, alice: User
) -> None:
    swapped = client.post("/settings/body-logging/", {"log_bodies": "on"}, HTTP_HX_REQUEST="true")
    html = swapped.content.decode()
    assert swapped.status_code == HTTPStatus.OK
    assert html.lstrip().startswith(
        '<section class="panel" id="body-logging" data-body-logging="on"'
    )
    assert "Saved." in html
    assert "<html" not in html
    bad = client.post("/settings/body-logging/", {"log_bodies": "maybe"})
    assert bad.status_code == HTTPStatus.BAD_REQUEST
    alice.refresh_from_db()
    assert alice.log_bodies is True
    assert client.get("/settings/body-logging/").status_code == HTTPStatus.METHOD_NOT_ALLOWED


def test_the_choice_rides_on_the_keys_cache_entries(
    client: Client, alice: User, django_capture_on_commit_callbacks: Any
) -> None:
    key = key_mint(owner=alice, spec=KeySpec(name="k")).key
    policy = KeyPolicy.from_entry(
        key_cache_entry(ApiKey.objects.select_related("owner").get(pk=key.pk))
    )
    assert policy.log_bodies is False
    announced: list[list[str]] = []
    from keys.cache import key_changed

    def heard(sender: Any, hashes: list[str], **kwargs: Any) -> None:
        announced.append(hashes)

    key_changed.connect(heard, dispatch_uid="body-logging-test")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            client.post("/settings/body-logging/", {"log_bodies": "on"})
    finally:
        key_changed.disconnect(dispatch_uid="body-logging-test")
    assert announced == [[key.secret_hash]]  # every gateway process drops its copy
    entry = key_cache_entry(ApiKey.objects.select_related("owner").get(pk=key.pk))
    assert KeyPolicy.from_entry(entry).log_bodies is True
    # An entry cached before body logging existed says nothing of it: off.
    del entry["log_bodies"]
    assert KeyPolicy.from_entry(entry).log_bodies is False


def test_the_detail_page_shows_the_bodies_escaped_and_pretty_printed(
    client: Client, alice: User
) -> None:
    event = call(alice, chat("<script>alert(1)</script> hi"), answer("Hello & welcome"))
    page = client.get(f"/logs/{event.event_id}/").content.decode()
    assert 'data-bodies="stored"' in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; hi" in page
    assert "&quot;role&quot;: &quot;user&quot;" in page  # indented JSON, each key on its line
    assert "Hello &amp; welcome" in page
    assert "data-truncated" not in page


def test_a_cut_body_says_so_and_a_stream_is_put_back_together(client: Client, alice: User) -> None:
    frames = "".join(
        f"data: {json.dumps({'choices': [{'delta': {'content': word}}]})}\n\n"
        for word in ("Hel", "lo", " there")
    )
    stream = call(alice, chat("x" * 300), frames + "data: [DONE]\n\n", stream=True, limit=100)
    page = client.get(f"/logs/{stream.event_id}/").content.decode()
    assert re.search(r'data-truncated="request">Truncated at 100 of \d{3} bytes', page)
    assert 'data-body="assembled"' in page
    whole = call(alice, chat("short"), frames + "data: [DONE]\n\n", stream=True)
    page = client.get(f"/logs/{whole.event_id}/").content.decode()
    assert re.search(r'data-body="assembled">Hello there</pre>', page)
    assert "data: [DONE]" in page  # the stream as it was sent, below


def test_without_bodies_the_page_says_body_logging_was_off(client: Client, alice: User) -> None:
    event = usage_event(account_id=alice.pk, cost="0.001", started_at=NOW)
    usage_events_record(events=[event])
    page = client.get(f"/logs/{event.event_id}/").content.decode()
    assert 'data-bodies="none"' in page
    assert "body logging was off for it" in page
    assert "Turn it on under Settings" in page
    old = usage_event(account_id=alice.pk, cost="0.001", started_at=NOW - timedelta(days=30))
    usage_events_record(events=[old])
    assert "bodies were deleted" in client.get(f"/logs/{old.event_id}/").content.decode()


def listed(client: Client, q: str) -> set[str]:
    response = client.get("/logs/", {"q": q})
    assert response.status_code == HTTPStatus.OK
    return set(re.findall(r'data-record="([^"]+)"', response.content.decode()))


def test_the_search_finds_prompt_and_answer_text_of_the_account_alone(
    client: Client, alice: User, bob: User
) -> None:
    asked = call(alice, chat("What is the capital of Mongolia?"), answer("Ulaanbaatar."))
    other = call(alice, chat("Tell me a joke"), answer("Knock knock."))
    bobs = call(bob, chat("Mongolia secrets of Bob"), answer("Bob's answer: Ulaanbaatar"))
    assert listed(client, "capital of mongolia") == {asked.event_id}  # any case
    assert listed(client, "ulaanbaatar") == {asked.event_id}  # the answer too
    assert listed(client, "knock") == {other.event_id}
    assert listed(client, "Bob") == set()  # Bob's bodies are his
    assert listed(client, "secrets") == set()
    assert client.get(f"/logs/{bobs.event_id}/").status_code == HTTPStatus.NOT_FOUND
    client.force_login(bob)
    assert listed(client, "mongolia") == {bobs.event_id}
    page = client.get(f"/logs/{bobs.event_id}/").content.decode()
    assert "capital" not in page
    assert client.get(f"/logs/{asked.event_id}/").status_code == HTTPStatus.NOT_FOUND


def test_stored_bodies_are_idempotent_on_the_event_id(alice: User) -> None:
    event = call(alice, chat("once"), answer("one"))
    again = CapturedBodies(
        event_id=event.event_id,
        account_id=alice.pk,
        started_us=0,
        request=Excerpt.of(b"changed", 7, 100),
        response=Excerpt.of(b"changed", 7, 100),
        status=200,
    )
    usage_bodies_store(bodies=[again, again])
    row = UsageBody.objects.get(event_id=event.event_id)
    assert json.loads(row.request_text)["messages"][0]["content"] == "once"


def test_an_excerpt_keeps_what_postgres_can_hold() -> None:
    cut = Excerpt.of("añb\x00c".encode(), 6, 2)  # cut inside "ñ"; a NUL in an invalid body
    assert cut.truncated
    assert cut.size == 6
    assert cut.text == "a\ufffd"
    whole = Excerpt.of(b"a\x00b", 3, 10)
    assert whole.text == "a\ufffdb"
    assert not whole.truncated
