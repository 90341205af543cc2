"""GET /v1/generation?id=…: a call's stats in OpenRouter's shape, found by the answer's body `id`
or by its x-tokenbyte-generation-id, with the usage record's own figures; another account's id
is the same 404 as an unknown one; it is no model call (no usage event of its own)."""

import json
import time
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai
import pytest
import redis
from django.conf import settings

from accounts.models import User
from billing import tasks
from billing.models import UsageRecord
from keys.models import ApiKey
from keys.services import MintedKey, key_mint, key_revoke
from keys.validation import KeySpec
from tests.conftest import LiveServer
from tests.proxy.chat_helpers import HELLO
from tests.proxy.conftest import EventLog

pytestmark = pytest.mark.slow

HEADER = "x-tokenbyte-generation-id"


def recorded(event_id: str, timeout: float = 15.0) -> UsageRecord:
    """The call's usage record, once written: billing's consumer drained here with Redis, the
    gateway's own recorder in embedded mode."""
    client = redis.Redis.from_url(settings.REDIS_URL) if settings.REDIS_URL else None
    deadline = time.monotonic() + timeout
    try:
        while True:
            if client is not None:
                tasks.drain(client, consumer="generation-test", budget=1)
            record = UsageRecord.objects.filter(event_id=event_id).first()
            if record is not None:
                return record
            assert time.monotonic() < deadline, f"{event_id} was not recorded"
            time.sleep(0.05)
    finally:
        if client is not None:
            client.close()


def get_generation(gateway: LiveServer, api_key: str | None, **params: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {api_key}"} if api_key is not None else {}
    return httpx.get(f"{gateway.url}/v1/generation", params=params, headers=headers, timeout=30)


def stats(gateway: LiveServer, api_key: str, generation_id: str) -> dict[str, Any]:
    response = get_generation(gateway, api_key, id=generation_id)
    assert response.status_code == 200, response.text
    # Costs and times are JSON numbers with exact digits: read them as decimals.
    data: dict[str, Any] = json.loads(response.content, parse_float=Decimal)["data"]
    return data


def check_figures(data: dict[str, Any], record: UsageRecord) -> None:
    prompt = record.uncached_input_tokens + record.cache_read_tokens + record.cache_write_tokens
    completion = record.output_tokens + record.reasoning_tokens
    assert data["id"] == record.event_id
    assert data["upstream_id"] == data["response_id"] == record.response_id
    assert data["request_id"] == record.request_id
    assert data["model"] == record.model
    assert data["provider_name"] == record.provider
    assert data["streamed"] is record.stream
    assert data["cancelled"] is False
    assert (data["status"], data["error_code"]) == (200, None)
    assert (data["tokens_prompt"], data["native_tokens_prompt"]) == (prompt, prompt)
    assert (data["tokens_completion"], data["native_tokens_completion"]) == (completion,) * 2
    assert data["native_tokens_reasoning"] == record.reasoning_tokens
    assert data["native_tokens_cached"] == record.cache_read_tokens
    assert data["native_tokens_cache_write"] == record.cache_write_tokens
    assert data["total_cost"] == record.cost  # what usage.cost said
    assert data["usage"] == record.charged  # the ledger's charge
    assert Decimal(data["latency"]) == Decimal(record.latency_us) / 1000
    assert record.ttfb_us is not None
    assert Decimal(data["time_to_first_byte"]) == Decimal(record.ttfb_us) / 1000
    assert data["num_attempts"] == record.attempts == 1
    assert data["moderation_latency"] is None
    assert data["finish_reason"] is None
    assert data["created_at"] == record.started_at.isoformat()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_chat_answer_is_found_by_its_body_id_and_by_its_generation_id(
    chat_client: openai.OpenAI,
    translating_gateway: LiveServer,
    api_key: str,
    usage_events: EventLog,
    stream: bool,
) -> None:
    raw = chat_client.chat.completions.with_raw_response.create(
        model="GPT-4o",
        messages=HELLO,
        stream=stream,
        **({"stream_options": {"include_usage": True}} if stream else {}),
    )
    if stream:
        chunks = list(raw.parse())
        body_id = chunks[0].id
        assert {chunk.id for chunk in chunks} == {body_id}
        assert chunks[-1].usage is not None
    else:
        body_id = raw.parse().id
    assert body_id.startswith("chatcmpl-")
    generation_id = raw.headers[HEADER]
    event = usage_events.for_request(raw.headers["x-request-id"])
    assert (event.event_id, event.response_id) == (generation_id, body_id)

    record = recorded(generation_id)
    by_body = stats(translating_gateway, api_key, body_id)
    check_figures(by_body, record)
    assert by_body["streamed"] is stream
    assert stats(translating_gateway, api_key, generation_id) == by_body
    assert record.output_tokens > 0
    # The SDK's own low-level GET reads it too.
    through_sdk = chat_client.get(
        "/generation", cast_to=object, options={"params": {"id": generation_id}}
    )
    assert through_sdk["data"]["id"] == generation_id


@pytest.mark.parametrize("model", ["Claude Haiku 4.5", "GPT-4o"], ids=["native", "translated"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_messages_answer_is_found_by_its_msg_id(
    claude: anthropic.Anthropic,
    translating_gateway: LiveServer,
    api_key: str,
    usage_events: EventLog,
    model: str,
    stream: bool,
) -> None:
    body: dict[str, Any] = {"model": model, "max_tokens": 100, "messages": HELLO}
    if stream:
        with claude.messages.stream(**body) as streamed:
            message = streamed.get_final_message()
            headers = streamed.response.headers
    else:
        raw = claude.messages.with_raw_response.create(**body)
        message, headers = raw.parse(), raw.headers
    assert message.id.startswith("msg_")
    event = usage_events.for_request(headers["x-request-id"])
    assert (event.event_id, event.response_id) == (headers[HEADER], message.id)

    record = recorded(event.event_id)
    data = stats(translating_gateway, api_key, message.id)
    check_figures(data, record)
    assert data["endpoint"] == "messages"
    assert data["upstream_id"] == message.id


@pytest.fixture
def other_key(transactional_db: None) -> MintedKey:
    stranger = User.objects.create_user("someone-else@example.com")
    return key_mint(owner=stranger, spec=KeySpec(name="another account"))


def test_another_accounts_call_is_the_same_404_as_an_unknown_id(
    chat_client: openai.OpenAI,
    translating_gateway: LiveServer,
    api_key: str,
    other_key: MintedKey,
    usage_events: EventLog,
) -> None:
    raw = chat_client.chat.completions.with_raw_response.create(model="GPT-4o", messages=HELLO)
    body_id, generation_id = raw.parse().id, raw.headers[HEADER]
    recorded(generation_id)
    assert stats(translating_gateway, api_key, body_id)["id"] == generation_id

    def refusal(key: str, generation_id: str) -> tuple[int, dict[str, Any], str]:
        response = get_generation(translating_gateway, key, id=generation_id)
        shown = {
            name: value
            for name, value in response.headers.items()
            if name not in ("x-request-id", "date", "content-length")
        }
        return response.status_code, shown, response.text

    unknown = "chatcmpl-" + "0" * (len(body_id) - len("chatcmpl-"))
    assert len(unknown) == len(body_id)
    for theirs in (body_id, generation_id):
        status, headers, text = refusal(other_key.secret, theirs)
        assert status == 404
        error = json.loads(text)["error"]
        assert (error["type"], error["code"], error["param"]) == (
            "invalid_request_error",
            "generation_not_found",
            "id",
        )
        assert "retry shortly" in error["message"]
        # Byte for byte the answer to an id nobody has, but for the id it names.
        mine_unknown = refusal(api_key, unknown)
        assert (status, headers) == mine_unknown[:2]
        assert text == mine_unknown[2].replace(unknown, theirs)
        assert refusal(other_key.secret, unknown) == mine_unknown
    assert get_generation(translating_gateway, api_key, id="x" * 1000).status_code == 404


def test_a_missing_or_empty_id_is_400(translating_gateway: LiveServer, api_key: str) -> None:
    for params in ({}, {"id": ""}, {"id": "  "}):
        response = get_generation(translating_gateway, api_key, **params)
        assert response.status_code == 400
        error = response.json()["error"]
        assert (error["type"], error["param"]) == ("invalid_request_error", "id")
        assert error["message"].startswith("id: required")


def test_without_a_valid_key_it_is_401(
    translating_gateway: LiveServer, api_key: str, minted: MintedKey
) -> None:
    assert get_generation(translating_gateway, None, id="x").status_code == 401
    assert get_generation(translating_gateway, "tb-" + "x" * 40, id="x").status_code == 401
    assert get_generation(translating_gateway, api_key, id="x").status_code == 404
    key_revoke(key=ApiKey.objects.get(pk=minted.key.pk))
    deadline = time.monotonic() + 5  # revocation reaches the gateway within a second
    while (response := get_generation(translating_gateway, api_key, id="x")).status_code != 401:
        assert time.monotonic() < deadline, response.text
        time.sleep(0.05)
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_api_key")
    assert "revoked" in error["message"]


def test_a_lookup_is_no_model_call(
    translating_gateway: LiveServer, api_key: str, usage_events: EventLog
) -> None:
    response = get_generation(translating_gateway, api_key, id="chatcmpl-none")
    assert response.status_code == 404
    assert HEADER not in response.headers
    time.sleep(0.3)
    assert all(e.request_id != response.headers["x-request-id"] for e in usage_events.events)


@pytest.mark.skipif(not settings.REDIS_URL, reason="with Redis, records wait for the consumer")
def test_a_call_not_yet_recorded_is_404_until_it_is(
    chat_client: openai.OpenAI, translating_gateway: LiveServer, api_key: str
) -> None:
    raw = chat_client.chat.completions.with_raw_response.create(model="GPT-4o", messages=HELLO)
    generation_id = raw.headers[HEADER]
    assert get_generation(translating_gateway, api_key, id=generation_id).status_code == 404
    recorded(generation_id)
    assert stats(translating_gateway, api_key, generation_id)["id"] == generation_id
