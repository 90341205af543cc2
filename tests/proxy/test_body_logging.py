"""Body logging through the live gateway and the official openai SDK: off by default nothing is
stored; turned on through the settings page (a real POST with its CSRF token) a call's request
body and what its client received are stored, whole or streamed, errors too, cut at the limit
with the cut noted; the API key, the Authorization header and the upstream's key appear in no
stored row. Both modes: bodies through their Redis stream and billing's drain, or written by
the gateway itself."""

import json
import re
import time
import uuid
from http import HTTPStatus
from typing import Any

import openai
import pytest
import redis
from django.conf import settings
from django.test import Client

from accounts.models import User
from billing.body_log import bodies_drain
from billing.body_models import UsageBody
from billing.models import UsageRecord
from keys.services import MintedKey, key_mint
from keys.validation import KeySpec
from tests.conftest import LiveServer
from tests.fakes.server import FakeServer
from tests.proxy.test_generation import recorded

pytestmark = pytest.mark.slow

UPSTREAM_KEY = "sk-fake-openai"  # the fake OpenAI's credential (tests/proxy/conftest.py)


def stored_bodies(event_id: str, timeout: float = 15.0) -> UsageBody:
    """The call's stored bodies, once written: drained here from their stream with Redis, by
    the gateway's body log in embedded mode."""
    client = redis.Redis.from_url(settings.REDIS_URL) if settings.REDIS_URL else None
    deadline = time.monotonic() + timeout
    try:
        while True:
            if client is not None:
                bodies_drain(client, consumer="body-logging-test", budget=1)
            row = UsageBody.objects.filter(event_id=event_id).first()
            if row is not None:
                return row
            assert time.monotonic() < deadline, f"no bodies stored for {event_id}"
            time.sleep(0.05)
    finally:
        if client is not None:
            client.close()


def turn_on_through_settings(user: User, on: bool = True) -> None:
    """The settings page's form, posted as a browser would: its CSRF token read from the page."""
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    page = browser.get("/settings/")
    assert page.status_code == HTTPStatus.OK
    html = page.content.decode()
    section = html[html.index('id="body-logging"') :]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', section)
    assert token is not None
    answer = browser.post(
        "/settings/body-logging/",
        {"log_bodies": "on" if on else "off", "csrfmiddlewaretoken": token.group(1)},
    )
    assert answer.status_code == HTTPStatus.FOUND
    user.refresh_from_db()
    assert user.log_bodies is on


def client_for(gateway: LiveServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=30)


def all_text(row: UsageBody) -> str:
    return " ".join(str(value) for value in row.__dict__.values())


def assert_no_secret(row: UsageBody, api_key: str) -> None:
    text = all_text(row)
    for secret in (api_key, api_key[3:], UPSTREAM_KEY, "Bearer", "authorization"):
        assert secret not in text, secret


def test_off_by_default_nothing_is_stored(
    gateway: LiveServer, openai_client: openai.OpenAI, key_owner: User
) -> None:
    assert key_owner.log_bodies is False
    quiet = openai_client.chat.completions.with_raw_response.create(
        model="GPT-4o", messages=[{"role": "user", "content": "nothing of this is kept"}]
    )
    quiet_id = quiet.headers["x-tokenbyte-generation-id"]
    recorded(quiet_id)
    # Another account that keeps bodies calls after it: once its bodies are stored, the first
    # call's would have been too (one body log per process, first in, first out).
    other = User.objects.create_user("keeps-bodies@example.com", log_bodies=True)
    other_key = key_mint(owner=other, spec=KeySpec(name="kept")).secret
    kept = client_for(gateway, other_key).chat.completions.with_raw_response.create(
        model="GPT-4o", messages=[{"role": "user", "content": "this is kept"}]
    )
    stored_bodies(kept.headers["x-tokenbyte-generation-id"])
    assert not UsageBody.objects.filter(event_id=quiet_id).exists()
    assert not UsageBody.objects.filter(account=key_owner).exists()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_turned_on_in_settings_a_calls_bodies_are_stored_as_the_client_saw_them(
    gateway: LiveServer,
    openai_client: openai.OpenAI,
    key_owner: User,
    minted: MintedKey,
    stream: bool,
) -> None:
    turn_on_through_settings(key_owner)
    prompt = f"Remember the word {uuid.uuid4().hex}, please."
    extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if stream else {}
    raw = openai_client.chat.completions.with_raw_response.create(
        model="GPT-4o",
        messages=[{"role": "user", "content": prompt}],
        temperature=0.5,
        stream=stream,
        **extra,
    )
    event_id = raw.headers["x-tokenbyte-generation-id"]
    if stream:
        chunks = list(raw.parse())
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        completion = raw.parse()
        text = completion.choices[0].message.content or ""
    record = recorded(event_id)
    row = stored_bodies(event_id)
    assert row.account_id == key_owner.pk
    assert abs(row.created_at - record.started_at).total_seconds() < 0.001  # the call's start
    assert row.status == 200

    sent = json.loads(row.request_text)  # what the SDK sent, as it sent it
    assert sent["messages"] == [{"role": "user", "content": prompt}]
    assert sent["model"] == "GPT-4o"
    assert sent["temperature"] == 0.5
    assert sent.get("stream", False) is stream
    assert "max_completion_tokens" not in sent  # the gateway's own changes are not the client's
    assert row.request_bytes == len(row.request_text.encode())
    assert not row.request_truncated
    assert not row.response_truncated
    assert row.response_bytes == len(row.response_text.encode())

    if stream:
        assert row.response_text.startswith("data: {")
        assert row.response_text.endswith("data: [DONE]\n\n")
        events = [
            json.loads(line[6:])
            for line in row.response_text.splitlines()
            if line.startswith("data: {")
        ]
        assert (
            "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
            == text
        )
        assert events[-1]["usage"]["cost"] is not None  # the usage chunk the client got
    else:
        answer = json.loads(row.response_text)
        assert answer == json.loads(raw.http_response.content)  # byte for byte what was sent
        assert answer["choices"][0]["message"]["content"] == text
    assert_no_secret(row, minted.secret)


def test_bodies_are_cut_at_the_limit_and_say_so(
    gateway: LiveServer,
    openai_client: openai.OpenAI,
    key_owner: User,
    minted: MintedKey,
    fake_openai: FakeServer,
) -> None:
    limit = settings.TOKENBYTE_BODY_LOG_MAX_BYTES
    turn_on_through_settings(key_owner)
    fake_openai.app.reply = " ".join(["word"] * limit)  # an answer of about five times the limit
    prompt = "x" * (limit + 5000)
    for stream in (False, True):
        raw = openai_client.chat.completions.with_raw_response.create(
            model="GPT-4o", messages=[{"role": "user", "content": prompt}], stream=stream
        )
        body = b"".join(raw.http_response.iter_bytes()) if stream else raw.http_response.content
        row = stored_bodies(raw.headers["x-tokenbyte-generation-id"])
        assert row.request_truncated
        assert row.response_truncated
        assert len(row.request_text.encode()) == limit
        assert row.request_bytes > limit + 5000
        assert len(row.response_text.encode()) == limit
        assert row.response_bytes == len(body)  # the whole answer's size, counted on
        assert body.decode().startswith(row.response_text)
        assert_no_secret(row, minted.secret)


def test_an_error_is_stored_as_the_client_got_it(
    gateway: LiveServer, openai_client: openai.OpenAI, key_owner: User, minted: MintedKey
) -> None:
    turn_on_through_settings(key_owner)
    with pytest.raises(openai.NotFoundError) as caught:
        openai_client.chat.completions.create(
            model="No Such Model 9", messages=[{"role": "user", "content": "hello?"}]
        )
    request_id = caught.value.response.headers["x-request-id"]
    deadline = time.monotonic() + 15
    while (record := UsageRecord.objects.filter(request_id=request_id).first()) is None:
        if settings.REDIS_URL:
            from billing import tasks

            with redis.Redis.from_url(settings.REDIS_URL) as client:
                tasks.drain(client, consumer="body-logging-test", budget=1)
        assert time.monotonic() < deadline
        time.sleep(0.05)
    row = stored_bodies(record.event_id)
    assert row.status == 404
    assert json.loads(row.response_text) == caught.value.response.json()
    assert json.loads(row.request_text)["model"] == "No Such Model 9"
    assert_no_secret(row, minted.secret)


def test_turned_off_again_nothing_more_is_stored(
    gateway: LiveServer, openai_client: openai.OpenAI, key_owner: User
) -> None:
    turn_on_through_settings(key_owner)
    first = openai_client.chat.completions.with_raw_response.create(
        model="GPT-4o", messages=[{"role": "user", "content": "kept"}]
    )
    stored_bodies(first.headers["x-tokenbyte-generation-id"])
    turn_on_through_settings(key_owner, on=False)
    second = openai_client.chat.completions.with_raw_response.create(
        model="GPT-4o", messages=[{"role": "user", "content": "not kept"}]
    )
    second_id = second.headers["x-tokenbyte-generation-id"]
    recorded(second_id)
    other = User.objects.create_user("barrier@example.com", log_bodies=True)
    barrier = client_for(gateway, key_mint(owner=other, spec=KeySpec(name="b")).secret)
    after = barrier.chat.completions.with_raw_response.create(
        model="GPT-4o", messages=[{"role": "user", "content": "barrier"}]
    )
    stored_bodies(after.headers["x-tokenbyte-generation-id"])
    assert not UsageBody.objects.filter(event_id=second_id).exists()
