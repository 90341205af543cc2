"""POST /v1/responses to OpenAI cards, passed through: the official openai SDK's
`client.responses.create` streamed and not, a function tool round trip (inline items, as Codex
sends them with store: false, and by previous_response_id), the ledger's charge for cached and
reasoning tokens, the ceiling's clamping of max_output_tokens and its 402, the key's allowlist,
hosted tools without a price, and other providers' cards refused for now."""

import json
from decimal import Decimal

import httpx
import openai
import orjson
import pytest
from openai.types.responses import Response

from billing.models import LedgerEntry
from billing.money import charge_for
from keys.services import key_mint
from keys.validation import KeySpec
from tests.conftest import LiveServer
from tests.fakes.server import FakeServer
from tests.proxy.conftest import EventLog
from tests.proxy.test_ceiling import account, fitting, worst
from tests.proxy.test_charges_per_provider import check_charged_once, recorded

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REPLY = "Hello from the fake model, happy to help."
REPLY_TOKENS = 8
# GPT-4o: $2.50 in, $1.25 cached, $10.00 out per million tokens.
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


def post(gateway: LiveServer, secret: str, body: dict) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/responses",
        content=orjson.dumps(body),
        headers={"authorization": f"Bearer {secret}", "content-type": "application/json"},
        timeout=30,
    )


def test_a_response_is_relayed_with_the_title_and_its_usage_priced(
    openai_client: openai.OpenAI, fake_openai: FakeServer, usage_events: EventLog
) -> None:
    raw = openai_client.responses.with_raw_response.create(
        model="GPT-4o", input="Say hello", instructions="Be brief."
    )
    response = raw.parse()
    assert response.model == "GPT-4o"
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.output_text == REPLY
    sent = fake_openai.app.received[-1]
    assert sent.path == "/v1/responses"
    assert sent.body["model"] == "gpt-4o"  # the upstream id
    assert sent.body["instructions"] == "Be brief."
    usage = json.loads(raw.http_response.text, parse_float=Decimal)["usage"]
    # "Say hello" 2 + 3, "Be brief." 2 + 3: 10 input tokens; 8 output
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (10, 8, 18)
    assert usage["cost"] == (10 * Decimal("2.50") + 8 * Decimal("10.00")) / 1_000_000
    event = usage_events.for_request(raw.headers["x-request-id"])
    assert (event.endpoint, event.status, event.stream) == ("responses", 200, False)
    assert event.cost == usage["cost"]
    assert event.response_id == response.id


def test_a_stream_relays_every_event_in_order_and_prices_the_last(
    openai_client: openai.OpenAI, fake_openai: FakeServer, usage_events: EventLog
) -> None:
    raw = openai_client.responses.with_raw_response.create(
        model="GPT-4o", input="Say hello", stream=True
    )
    events = list(raw.parse())
    kinds = [event.type for event in events]
    assert kinds[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text == REPLY
    assert events[0].response.model == "GPT-4o"
    final = events[-1].response
    assert final.model == "GPT-4o"
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (5, REPLY_TOKENS)
    cost = Decimal(str(final.usage.model_extra["cost"]))
    assert cost == (5 * Decimal("2.50") + 8 * Decimal("10.00")) / 1_000_000
    event = usage_events.for_request(raw.headers["x-request-id"])
    assert (event.endpoint, event.stream, event.cost) == ("responses", True, cost)
    assert event.response_id == events[0].response.id
    assert fake_openai.app.received[-1].body["stream"] is True


def test_the_stream_wire_format_names_every_event(gateway: LiveServer, api_key: str) -> None:
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/responses",
        json={"model": "GPT-4o", "input": "Say hello", "stream": True},
        headers={"authorization": f"Bearer {api_key}"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        body = response.read().decode()
    frames = [frame for frame in body.split("\n\n") if frame]
    for frame in frames:
        name, data = frame.split("\n")
        assert name.startswith("event: ")
        assert json.loads(data.removeprefix("data: "))["type"] == name.removeprefix("event: ")
    assert "[DONE]" not in body
    assert "openai-organization" not in body


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_function_tool_round_trip_with_inline_items_and_store_false(
    openai_client: openai.OpenAI, fake_openai: FakeServer, stream: bool
) -> None:
    question = [{"role": "user", "content": "Weather in Paris?"}]
    first: Response
    if stream:
        with openai_client.responses.stream(
            model="GPT-4.1", input=question, tools=[WEATHER], store=False
        ) as events:
            first = events.get_final_response()
    else:
        first = openai_client.responses.create(
            model="GPT-4.1", input=question, tools=[WEATHER], store=False
        )
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert fake_openai.app.received[-1].body["store"] is False
    # Codex's way: no stored state, the whole conversation sent again with the tool's output.
    answer = openai_client.responses.create(
        model="GPT-4.1",
        input=[
            *question,
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "22 C, sunny"},
        ],
        tools=[WEATHER],
        store=False,
        stream=False,
    )
    assert answer.output_text == "The tool said: 22 C, sunny"


def test_a_function_tool_round_trip_by_previous_response_id(
    openai_client: openai.OpenAI, fake_openai: FakeServer
) -> None:
    first = openai_client.responses.create(
        model="GPT-4o", input="Weather in Paris?", tools=[WEATHER]
    )
    call = next(item for item in first.output if item.type == "function_call")
    answer = openai_client.responses.create(
        model="GPT-4o",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "rain"}],
        tools=[WEATHER],
    )
    assert answer.output_text == "The tool said: rain"
    assert answer.previous_response_id == first.id
    # The fake, as OpenAI, refuses an output with no call before it.
    with pytest.raises(openai.BadRequestError) as refused:
        openai_client.responses.create(
            model="GPT-4o",
            input=[{"type": "function_call_output", "call_id": "call_nope", "output": "x"}],
            store=False,
        )
    assert "No tool call found" in refused.value.message


@pytest.fixture
def cache_and_reasoning(fake_openai: FakeServer) -> None:
    fake_openai.app.cached_tokens, fake_openai.app.reasoning_tokens = 2, 3


@pytest.mark.usefixtures("cache_and_reasoning")
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_ledger_charges_the_cards_prices_times_the_upstreams_usage(
    openai_client: openai.OpenAI, stream: bool
) -> None:
    raw = openai_client.responses.with_raw_response.create(
        model="o4-mini", input="Say hello", reasoning={"effort": "low"}, stream=stream
    )
    if stream:
        final = list(raw.parse())[-1]
        assert final.type == "response.completed"
        usage = final.response.usage
        told = Decimal(str(usage.model_extra["cost"]))
        given, produced = usage.input_tokens, usage.output_tokens
        assert usage.input_tokens_details.cached_tokens == 2
        assert usage.output_tokens_details.reasoning_tokens == 3
    else:
        body = orjson.loads(raw.http_response.content)
        told = Decimal(orjson.dumps(body["usage"]["cost"]).decode())
        given, produced = body["usage"]["input_tokens"], body["usage"]["output_tokens"]
    record = recorded(raw.headers["x-request-id"])
    check_charged_once(record, told)
    assert (record.cache_read_tokens, record.reasoning_tokens) == (2, 3)
    assert given == record.uncached_input_tokens + record.cache_read_tokens == 5
    assert produced == record.output_tokens + record.reasoning_tokens == REPLY_TOKENS + 3
    # o4-mini: 3 x $1.10 + 2 x $0.275 + 11 x $4.40 per million, the same streamed or not
    expected = (3 * Decimal("1.10") + 2 * Decimal("0.275") + 11 * Decimal("4.40")) / 1_000_000
    assert told == expected
    assert record.charged == charge_for(expected)
    assert record.endpoint == "responses"


def test_over_the_cap_max_output_tokens_is_lowered_and_sent_upstream(
    gateway: LiveServer, fake_openai: FakeServer
) -> None:
    owner = account("10", "responses-cap@example.com")
    cap = Decimal("0.01")
    secret = key_mint(owner=owner, spec=KeySpec(name="capped", max_request_cost=cap)).secret
    request = {"model": "GPT-4o", "input": "Hello!"}
    raw = orjson.dumps(request)
    assert worst(raw, 16_384) > cap

    answer = post(gateway, secret, request)

    assert answer.status_code == 200, answer.text
    lowered = fitting(raw, cap)
    assert answer.headers["x-tokenbyte-max-tokens"] == str(lowered)
    assert fake_openai.app.received[-1].body["max_output_tokens"] == lowered
    assert answer.json()["max_output_tokens"] == lowered


def test_a_balance_that_cannot_cover_a_minimal_answer_is_refused_with_402(
    gateway: LiveServer, fake_openai: FakeServer, usage_events: EventLog
) -> None:
    broke = account("0", "responses-broke@example.com")
    secret = key_mint(owner=broke, spec=KeySpec(name="broke")).secret
    before = len(fake_openai.app.received)

    refused = post(gateway, secret, {"model": "GPT-4o", "input": "Hello!", "stream": True})

    assert refused.status_code == 402
    assert refused.json()["error"]["code"] == "insufficient_balance"
    assert len(fake_openai.app.received) == before
    event = usage_events.for_request(refused.headers["x-request-id"])
    assert (event.endpoint, event.status, event.cost) == ("responses", 402, 0)


def test_a_key_whose_allowlist_excludes_the_model_is_refused(
    gateway: LiveServer, key_owner: object, fake_openai: FakeServer
) -> None:
    secret = key_mint(
        owner=key_owner, spec=KeySpec(name="mini only", allowed_models=("GPT-4o mini",))
    ).secret
    before = len(fake_openai.app.received)
    refused = post(gateway, secret, {"model": "GPT-4o", "input": "Hello!"})
    assert refused.status_code == 403
    assert refused.json()["error"]["type"] == "permission_error"
    assert post(gateway, secret, {"model": "GPT-4o mini", "input": "Hello!"}).status_code == 200
    assert len(fake_openai.app.received) == before + 1


def test_what_the_gateway_checks_before_any_upstream_call(
    gateway: LiveServer, api_key: str, fake_openai: FakeServer
) -> None:
    before = len(fake_openai.app.received)
    cases = [
        ({"model": "GPT-4o"}, "input", "missing_required_parameter"),
        ({"model": "GPT-4o", "input": 3}, "input", "invalid_type"),
        ({"model": "GPT-4o", "input": "x", "max_tokens": 50}, "max_tokens", "unknown_parameter"),
        (
            {"model": "GPT-4o", "input": "x", "max_output_tokens": 5},
            "max_output_tokens",
            "integer_below_min_value",
        ),
        ({"model": "GPT-4o", "input": "x", "stream": "yes"}, "stream", "invalid_type"),
        ({"model": "GPT-4o", "input": "x", "background": True}, "background", "unsupported_value"),
        (
            {"model": "GPT-4o", "input": "x", "tools": [{"type": "web_search"}]},
            "tools[0].type",
            "unsupported_value",
        ),
        (  # GPT-5 prices web_search, not the preview, which costs more on some models
            {"model": "GPT-5", "input": "x", "tools": [{"type": "web_search_preview"}]},
            "tools[0].type",
            "unsupported_value",
        ),
    ]
    for body, param, code in cases:
        answer = post(gateway, api_key, body)
        assert answer.status_code == 400, (body, answer.text)
        error = answer.json()["error"]
        assert (error["param"], error["code"]) == (param, code), body
    assert len(fake_openai.app.received) == before


def test_the_strict_fake_refuses_what_openai_refuses(
    gateway: LiveServer, api_key: str, fake_openai: FakeServer
) -> None:
    """Passed through, the upstream's own refusal reaches the client (its words, scrubbed)."""
    answer = post(
        gateway,
        api_key,
        {
            "model": "GPT-4o",
            "input": "x",
            "tools": [{"type": "function", "function": {"name": "chat_shape"}}],
        },
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "tools[0].name"
    assert "openai-organization" not in answer.headers


def test_a_previous_response_is_held_at_the_context_window(
    gateway: LiveServer, fake_openai: FakeServer
) -> None:
    """What OpenAI adds from its storage is not in the body: the prompt's bound is the window."""
    owner = account("0.40", "responses-window@example.com")
    secret = key_mint(owner=owner, spec=KeySpec(name="window")).secret
    first = post(gateway, secret, {"model": "GPT-4o", "input": "Hello!"})
    assert first.status_code == 200
    # 128,000 x $2.50 per million = $0.32 for the prompt alone: the output is cut to fit.
    follow = post(
        gateway,
        secret,
        {"model": "GPT-4o", "input": "More", "previous_response_id": first.json()["id"]},
    )
    assert follow.status_code == 200, follow.text
    assert int(follow.headers["x-tokenbyte-max-tokens"]) < 16_384


def test_an_error_event_mid_stream_is_the_gateways_own_and_the_stream_is_billed(
    gateway: LiveServer, api_key: str, fake_openai: FakeServer, usage_events: EventLog
) -> None:
    fake_openai.app.stream_error_after = 6
    fake_openai.app.stream_error["message"] = "Internal failure at host fake-7.internal.openai"
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/responses",
        json={"model": "GPT-4o", "input": "Say hello", "stream": True},
        headers={"authorization": f"Bearer {api_key}"},
        timeout=30,
    ) as response:
        body = response.read().decode()
        request_id = response.headers["x-request-id"]
    frames = [frame for frame in body.split("\n\n") if frame]
    name, data = frames[-2].split("\n")
    assert name == "event: error"
    error = json.loads(data.removeprefix("data: "))
    assert error["type"] == "error"
    assert error["code"] == "upstream_error"
    assert error["sequence_number"] == 6  # after the six relayed (0 to 5)
    assert len(frames) == 8  # those read with the error went out before it
    # Then the terminal event a client waits for: the response as it opened, failed.
    name, data = frames[-1].split("\n")
    assert name == "event: response.failed"
    failed = json.loads(data.removeprefix("data: "))
    opened = json.loads(frames[0].split("\n")[1].removeprefix("data: "))
    assert failed["sequence_number"] == 7
    assert failed["response"]["id"] == opened["response"]["id"]
    assert (failed["response"]["status"], failed["response"]["model"]) == ("failed", "GPT-4o")
    assert failed["response"]["error"]["code"] == "upstream_error"
    assert "internal.openai" not in body
    assert "response.completed" not in body
    event = usage_events.for_request(request_id)
    assert (event.status, event.error_code) == (200, "upstream_error")
    assert event.usage.estimated
    assert event.cost > 0


def test_the_openai_sdk_reads_a_failed_stream_to_its_response_failed_event(
    openai_client: openai.OpenAI, fake_openai: FakeServer
) -> None:
    fake_openai.app.stream_error_after = 4
    seen = list(openai_client.responses.create(model="GPT-4o", input="Say hello", stream=True))
    assert [event.type for event in seen[-2:]] == ["error", "response.failed"]
    failed = seen[-1]
    assert isinstance(failed, openai.types.responses.ResponseFailedEvent)
    assert failed.response.status == "failed"
    assert failed.response.error is not None
    assert failed.response.error.code == "upstream_error"
    assert failed.response.error.message.startswith("The upstream (openai) failed mid-stream")
    opened = seen[0]
    assert isinstance(opened, openai.types.responses.ResponseCreatedEvent)
    assert failed.response.id == opened.response.id


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_priced_hosted_tool_is_held_to_max_tool_calls_and_charged_per_call(
    openai_client: openai.OpenAI, fake_openai: FakeServer, usage_events: EventLog, stream: bool
) -> None:
    # GPT-5 Search API prices web_search at $0.01 a call.
    raw = openai_client.responses.with_raw_response.create(
        model="GPT-5 Search API", input="News?", tools=[{"type": "web_search"}], stream=stream
    )
    if stream:
        events = list(raw.parse())
        assert "response.web_search_call.searching" in [event.type for event in events]
        told = Decimal(str(events[-1].response.usage.model_extra["cost"]))
    else:
        told = Decimal(str(raw.parse().usage.model_extra["cost"]))
    sent = fake_openai.app.received[-1].body
    assert sent["max_tool_calls"] == 8  # written in: the worst case holds eight calls
    # 1 + 3 input tokens at $1.25, 8 output at $10.00 per million, and one search
    expected = (4 * Decimal("1.25") + 8 * Decimal("10.00")) / 1_000_000 + Decimal("0.01")
    assert told == expected
    event = usage_events.for_request(raw.headers["x-request-id"])
    assert (event.cost, event.usage.server_tools) == (expected, {"web_search": 1})


def test_the_keys_rate_limit_applies(gateway: LiveServer, key_owner: object) -> None:
    secret = key_mint(owner=key_owner, spec=KeySpec(name="one a minute", rpm=1)).secret
    assert post(gateway, secret, {"model": "GPT-4o", "input": "Hello!"}).status_code == 200
    limited = post(gateway, secret, {"model": "GPT-4o", "input": "Hello!"})
    assert limited.status_code == 429
    assert "retry-after" in limited.headers


def test_a_client_that_leaves_mid_stream_is_charged_once(
    gateway: LiveServer, api_key: str, fake_openai: FakeServer
) -> None:
    fake_openai.app.chunk_delay = 0.2
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/responses",
        json={"model": "GPT-4o", "input": "Say hello", "stream": True},
        headers={"authorization": f"Bearer {api_key}"},
        timeout=30,
    ) as response:
        request_id = response.headers["x-request-id"]
        next(response.iter_bytes())  # the first event, then the client goes
    record = recorded(request_id)
    assert record.client_disconnected
    assert (record.status, record.error_code, record.endpoint) == (
        200,
        "client_disconnected",
        "responses",
    )
    assert record.charged == charge_for(record.cost)
    assert LedgerEntry.objects.filter(event_id=record.event_id).count() == (
        1 if record.charged else 0
    )
