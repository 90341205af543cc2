"""POST /v1/messages through the official anthropic SDK to cards of other providers: the
request translated into the OpenAI-shaped core and the answer back into Anthropic's shapes
(the Anthropic-card and error cases are in test_messages.py)."""

import json
from decimal import Decimal

import anthropic
import pytest

from tests.conftest import LiveServer
from tests.fakes.server import FakeServer
from tests.proxy.conftest import EventLog
from tests.proxy.test_messages import HELLO, WEATHER, sse_events, stream_raw

pytestmark = pytest.mark.slow


def test_openai_card_translated_both_ways(
    translating_gateway: LiveServer,
    api_key: str,
    claude: anthropic.Anthropic,
    fake_openai: FakeServer,
    usage_events: EventLog,
) -> None:
    raw = claude.messages.with_raw_response.create(
        model="GPT-4o",
        max_tokens=100,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=HELLO,
        stop_sequences=["END"],
        metadata={"user_id": "end-user-42"},
        extra_body={"temperature": 0.3},  # this SDK version dropped the sampling parameters
    )
    message = raw.parse()
    assert (message.model, message.stop_reason) == ("GPT-4o", "end_turn")
    assert message.content[0].text == "Hello from the fake model, happy to help."
    sent = fake_openai.app.received[-1].body
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, *HELLO]
    assert (sent["model"], sent["max_tokens"], sent["stop"]) == ("gpt-4o", 100, ["END"])
    assert (sent["temperature"], sent["user"]) == (0.3, "end-user-42")
    usage = json.loads(raw.http_response.text, parse_float=Decimal)["usage"]
    # 7 prompt tokens (system 2 + 3, user 2 + 3... as the OpenAI fake counts) priced at GPT-4o
    event = usage_events.for_request(raw.headers["x-request-id"])
    assert usage["input_tokens"] == event.usage.uncached_input
    assert usage["output_tokens"] == 8
    assert usage["cost"] == event.cost
    request_id, text = stream_raw(
        translating_gateway, api_key, {"model": "GPT-4o", "max_tokens": 100, "messages": HELLO}
    )
    events = sse_events(text)
    names = [name for name, _ in events]
    assert names[0] == "message_start"
    assert names[-2:] == ["message_delta", "message_stop"]
    assert events[1] == (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    )
    assert "".join(
        data["delta"]["text"] for name, data in events if name == "content_block_delta"
    ) == ("Hello from the fake model, happy to help.")
    streamed = usage_events.for_request(request_id)
    plain = claude.messages.with_raw_response.create(model="GPT-4o", max_tokens=100, messages=HELLO)
    unstreamed = usage_events.for_request(plain.headers["x-request-id"])
    assert (streamed.usage, streamed.cost) == (unstreamed.usage, unstreamed.cost)
    assert events[-2][1]["usage"] == {
        "input_tokens": 5,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 8,
        "cost": Decimal("0.0000925"),
    }
    assert events[-2][1]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}


def test_tool_round_trip_on_an_openai_card(
    claude: anthropic.Anthropic, fake_openai: FakeServer
) -> None:
    question = {"role": "user", "content": "Weather in Paris?"}
    first = claude.messages.create(
        model="GPT-4.1",
        max_tokens=200,
        tools=[WEATHER],
        tool_choice={"type": "any"},
        messages=[question],
    )
    assert first.stop_reason == "tool_use"
    tool_use = first.content[0]
    assert (tool_use.type, tool_use.name, tool_use.input) == (
        "tool_use",
        "get_weather",
        {"city": "Paris"},
    )
    sent = fake_openai.app.received[-1].body
    assert sent["tool_choice"] == "required"
    assert sent["tools"][0]["function"]["parameters"] == WEATHER["input_schema"]
    history = [
        question,
        {
            "role": "assistant",
            "content": [block.model_dump(exclude_none=True) for block in first.content],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": tool_use.id, "content": "18 degrees"}
            ],
        },
    ]
    answer = claude.messages.create(
        model="GPT-4.1", max_tokens=200, tools=[WEATHER], messages=history
    )
    assert answer.content[0].text == "The tool said: 18 degrees"
    assert answer.stop_reason == "end_turn"
    messages = fake_openai.app.received[-1].body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
    }
    assert messages[2] == {"role": "tool", "tool_call_id": tool_use.id, "content": "18 degrees"}
    # Streamed, the tool input arrives as input_json_delta and the SDK assembles it.
    with claude.messages.stream(
        model="GPT-4.1", max_tokens=200, tools=[WEATHER], messages=[question]
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].input == {"city": "Paris"}


def test_gemini_card_streamed_and_not(
    claude: anthropic.Anthropic, fake_gemini: FakeServer, usage_events: EventLog
) -> None:
    fake_gemini.app.thoughts_tokens = 3
    body = {
        "model": "Gemini 2.5 Flash",
        "max_tokens": 100,
        "messages": HELLO,
        "extra_body": {"top_k": 5},
    }
    raw = claude.messages.with_raw_response.create(**body)
    message = raw.parse()
    assert message.content[0].text == "Hello from the fake Gemini, happy to help."
    assert (message.usage.input_tokens, message.usage.output_tokens) == (2, 11)
    assert fake_gemini.app.received[-1].body["generationConfig"] == {
        "maxOutputTokens": 100,
        "topK": 5,
    }
    with claude.messages.stream(**body) as stream:
        final = stream.get_final_message()
        request_id = stream.response.headers["x-request-id"]
    assert final.content[0].text == message.content[0].text
    assert (final.usage.input_tokens, final.usage.output_tokens) == (2, 11)
    one = usage_events.for_request(raw.headers["x-request-id"])
    two = usage_events.for_request(request_id)
    assert (one.usage, one.cost) == (two.usage, two.cost)
    # 2 x $0.30 + 11 x $2.50, per million
    assert one.cost == Decimal("0.0000281")
