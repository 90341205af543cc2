"""POST /v1/responses to cards that are not OpenAI's, through the official openai SDK: the
request translated into the chat core (instructions and items as turns, tools as functions,
text.format, reasoning), each provider's answer back as a response object or as the Responses
API's events in the documented order, and the money as on every endpoint (stream cost equal
to non-stream cost)."""

import json
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response

from tests.conftest import LiveServer
from tests.fakes.anthropic_rules import THINKING_TEXT
from tests.fakes.anthropic_rules import signature_for as claude_signature
from tests.fakes.gemini_rules import signature_for as gemini_signature
from tests.fakes.server import FakeServer
from tests.proxy.conftest import EventLog
from tests.proxy.test_responses_api import WEATHER

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CLAUDE, GEMINI, MISTRAL = "Claude Haiku 4.5", "Gemini 2.5 Flash", "Mistral Small"
REPLIES = {
    CLAUDE: "Hello from the fake Claude, happy to help.",
    GEMINI: "Hello from the fake Gemini, happy to help.",
    MISTRAL: "Bonjour from the fake Mistral model.",
}
TITLES = list(REPLIES)


def stream_events(gateway: LiveServer, api_key: str, body: dict[str, Any]) -> tuple[str, list]:
    """The raw SSE of a streamed response, as (name, data) pairs, and its request id."""
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/responses",
        json={**body, "stream": True},
        headers={"authorization": f"Bearer {api_key}"},
        timeout=30,
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        text = response.read().decode()
    events = []
    for block in text.strip().split("\n\n"):
        name, _, data = block.partition("\n")
        payload = json.loads(data.removeprefix("data: "), parse_float=Decimal)
        events.append((name.removeprefix("event: "), payload))
    return response.headers["x-request-id"], events


def sent_to(fake: FakeServer) -> dict[str, Any]:
    return [r for r in fake.app.received if r.method == "POST"][-1].body


@pytest.fixture
def fakes(
    fake_anthropic: FakeServer, fake_gemini: FakeServer, fake_mistral: FakeServer
) -> dict[str, FakeServer]:
    return {CLAUDE: fake_anthropic, GEMINI: fake_gemini, MISTRAL: fake_mistral}


@pytest.mark.parametrize("title", TITLES)
def test_a_response_from_another_provider(
    title: str,
    chat_client: openai.OpenAI,
    fakes: dict[str, FakeServer],
    usage_events: EventLog,
) -> None:
    raw = chat_client.responses.with_raw_response.create(
        model=title, instructions="Be brief.", input="Say hello", max_output_tokens=200
    )
    response = raw.parse()
    assert (response.model, response.status, response.object) == (title, "completed", "response")
    assert response.id.startswith("resp_")
    assert response.output_text == REPLIES[title]
    [item] = response.output
    assert (item.type, item.role, item.status) == ("message", "assistant", "completed")
    event = usage_events.for_request(raw.headers["x-request-id"])
    assert (event.endpoint, event.model, event.status) == ("responses", title, 200)
    usage = json.loads(raw.http_response.text, parse_float=Decimal)["usage"]
    assert usage["cost"] == event.cost > 0
    assert usage["input_tokens"] == event.usage.prompt_tokens
    assert usage["output_tokens"] == event.usage.completion_tokens
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    body = sent_to(fakes[title])
    flat = json.dumps(body)
    assert "Be brief." in flat
    assert "Say hello" in flat


@pytest.mark.parametrize("title", TITLES)
def test_a_stream_from_another_provider_in_the_documented_order(
    title: str, translating_gateway: LiveServer, api_key: str, usage_events: EventLog
) -> None:
    request_id, events = stream_events(
        translating_gateway, api_key, {"model": title, "input": "Say hello"}
    )
    names = [name for name, _ in events]
    assert names[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert names[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert set(names[4:-4]) == {"response.output_text.delta"}
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    assert all(data["type"] == name for name, data in events)
    text = "".join(data["delta"] for name, data in events if name.endswith("text.delta"))
    assert text == REPLIES[title]
    item_id = events[2][1]["item"]["id"]
    assert {data.get("item_id") for _, data in events[3:-2]} == {item_id}
    final = events[-1][1]["response"]
    assert final["output"][0]["content"][0]["text"] == text
    assert final["model"] == title
    assert final["id"] == events[0][1]["response"]["id"]
    streamed = usage_events.for_request(request_id)
    assert final["usage"]["cost"] == streamed.cost > 0
    plain = httpx.post(
        f"{translating_gateway.url}/v1/responses",
        json={"model": title, "input": "Say hello"},
        headers={"authorization": f"Bearer {api_key}"},
        timeout=30,
    )
    unstreamed = usage_events.for_request(plain.headers["x-request-id"])
    assert (streamed.usage, streamed.cost) == (unstreamed.usage, unstreamed.cost)


@pytest.mark.parametrize("title", TITLES)
@pytest.mark.parametrize("stream", [False, True])
def test_a_function_tool_round_trip_with_another_provider(
    title: str, stream: bool, chat_client: openai.OpenAI, fakes: dict[str, FakeServer]
) -> None:
    question = [{"role": "user", "content": "Weather in Paris?"}]
    first: Response
    if stream:
        with chat_client.responses.stream(model=title, input=question, tools=[WEATHER]) as events:
            first = events.get_final_response()
    else:
        first = chat_client.responses.create(model=title, input=question, tools=[WEATHER])
    calls = [item for item in first.output if item.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    sent = sent_to(fakes[title])
    assert "get_weather" in json.dumps(sent.get("tools"))
    history = [
        *question,
        *[item.model_dump(exclude_none=True) for item in first.output],
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "Sunny, 21 C"},
    ]
    second = chat_client.responses.create(model=title, input=history, tools=[WEATHER])
    assert second.output_text == "The tool said: Sunny, 21 C"
    if title != GEMINI:  # Gemini 2.5 names no call ids: its calls pair by order
        assert calls[0].call_id in json.dumps(sent_to(fakes[title]))


def test_structured_output_and_reasoning_reach_claude(
    chat_client: openai.OpenAI, fake_anthropic: FakeServer
) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "ok": {"type": "boolean"}},
        "required": ["answer", "ok"],
        "additionalProperties": False,
    }
    response = chat_client.responses.create(
        model=CLAUDE,
        input="Answer in JSON",
        text={"format": {"type": "json_schema", "name": "answer", "schema": schema}},
    )
    assert json.loads(response.output_text) == {"answer": "hello", "ok": True}
    reasoned = chat_client.responses.create(
        model=CLAUDE,
        input="Say hello",
        reasoning={"effort": "low"},
        max_output_tokens=4000,
        include=["reasoning.encrypted_content"],
    )
    sent = sent_to(fake_anthropic)
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    kinds = [item.type for item in reasoned.output]
    assert kinds == ["reasoning", "message"]
    assert reasoned.output[0].encrypted_content.startswith("tokenbyte.r1.")


def test_what_other_providers_cannot_do_is_refused_before_any_upstream_call(
    chat_client: openai.OpenAI, fake_anthropic: FakeServer
) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"previous_response_id": "resp_abc"}, "previous_response_id"),
        ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "tools[0].type"),
        (
            {"input": [{"type": "item_reference", "id": "msg_1"}]},
            "input[0]",
        ),
        ({"conversation": "conv_1"}, "conversation"),
    ]
    for extra, param in cases:
        with pytest.raises(openai.BadRequestError) as refused:
            chat_client.responses.create(**{"model": CLAUDE, "input": "Hi", **extra})
        error = refused.value.body
        assert isinstance(error, dict)
        assert error["param"] == param, error
    assert not [r for r in fake_anthropic.app.received if r.method == "POST"]


# The cards whose providers sign their reasoning, and what they sign for the weather tool call.
SIGNED_REASONING = pytest.mark.parametrize(
    ("title", "signed"),
    [
        ("Claude Opus 4.5", claude_signature(THINKING_TEXT)),
        ("Gemini 3 Pro Preview", gemini_signature("get_weather")),
    ],
)


@SIGNED_REASONING
@pytest.mark.parametrize("stream", [False, True])
def test_signed_reasoning_round_trips_in_encrypted_content(
    title: str,
    signed: str,
    stream: bool,
    chat_client: openai.OpenAI,
    fake_anthropic: FakeServer,
    fake_gemini: FakeServer,
) -> None:
    """What the provider signed (Claude's thinking blocks, Gemini 3's thought signatures) goes
    out in the reasoning item's encrypted_content, and back to the provider with the calls it
    led to: the strict fakes refuse a continuation without it, as the real APIs do."""
    question = [{"role": "user", "content": "Weather in Paris?"}]
    asked: dict[str, Any] = {
        "model": title,
        "input": question,
        "tools": [WEATHER],
        "reasoning": {"effort": "low"},
        "max_output_tokens": 4000,
        "include": ["reasoning.encrypted_content"],
    }
    if stream:
        with chat_client.responses.stream(**asked) as events:
            first = events.get_final_response()
    else:
        first = chat_client.responses.create(**asked)
    kinds = [item.type for item in first.output]
    assert {"reasoning", "function_call"} <= set(kinds), kinds
    blobs = [item.encrypted_content for item in first.output if item.type == "reasoning"]
    assert all(blob and blob.startswith("tokenbyte.r1.") for blob in blobs)
    if title.startswith("Claude"):
        assert first.output[0].summary[0].text == THINKING_TEXT
    call = next(item for item in first.output if item.type == "function_call")
    history = [
        *question,
        *[item.model_dump(exclude_none=True) for item in first.output],
        {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"},
    ]
    second = chat_client.responses.create(**{**asked, "input": history})
    assert second.output_text == "The tool said: Sunny"
    fake = fake_anthropic if title.startswith("Claude") else fake_gemini
    assert signed in json.dumps(sent_to(fake))  # the provider's own signature, not a skip


def test_web_search_is_claudes_own_search_held_and_charged_per_search(
    chat_client: openai.OpenAI, fake_anthropic: FakeServer, usage_events: EventLog
) -> None:
    """Codex sends web_search on every turn: on a Claude card that prices Claude's web search
    it becomes that server tool, at most 8 searches held, each charged; the answer is text."""
    raw = chat_client.responses.with_raw_response.create(
        model=CLAUDE, input="News?", tools=[{"type": "web_search"}, WEATHER]
    )
    sent = sent_to(fake_anthropic)
    assert sent["tools"][-1] == {"type": "web_search_20250305", "name": "web_search", "max_uses": 8}
    assert [tool["name"] for tool in sent["tools"]] == ["get_weather", "web_search"]
    event = usage_events.for_request(raw.headers["x-request-id"])
    assert event.usage.server_tools == {"web_search": fake_anthropic.app.searches}
    assert raw.parse().output


def test_web_search_is_dropped_where_the_card_has_no_search(
    chat_client: openai.OpenAI, fake_mistral: FakeServer
) -> None:
    response = chat_client.responses.create(
        model=MISTRAL, input="Say hello", tools=[{"type": "web_search"}]
    )
    assert response.output_text == REPLIES[MISTRAL]
    sent = sent_to(fake_mistral)
    assert "tools" not in sent
    assert "web_search_options" not in sent


def test_a_mid_stream_failure_ends_with_the_gateways_error_event_and_is_billed(
    translating_gateway: LiveServer,
    api_key: str,
    fake_anthropic: FakeServer,
    usage_events: EventLog,
) -> None:
    fake_anthropic.app.stream_error_after = 4
    request_id, events = stream_events(
        translating_gateway, api_key, {"model": CLAUDE, "input": "Say hello"}
    )
    (name, error), (last, failed) = events[-2:]
    assert name == "error"
    assert (error["type"], error["code"]) == ("error", "upstream_error")
    assert last == "response.failed"  # the terminal event a client waits for
    assert (failed["response"]["status"], failed["response"]["error"]["code"]) == (
        "failed",
        "upstream_error",
    )
    assert failed["response"]["id"] == events[0][1]["response"]["id"]
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    assert "response.completed" not in [name for name, _ in events]
    event = usage_events.for_request(request_id)
    assert (event.status, event.error_code) == (200, "upstream_error")
    assert event.usage.estimated
    assert event.cost > 0
