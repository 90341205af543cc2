"""Claude behind /v1/chat/completions: the official openai SDK in front, a strict fake of
Anthropic's Messages API behind."""

import json
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import LiveServer
from tests.fakes.anthropic_rules import THINKING_TEXT, AnthropicError
from tests.fakes.server import FakeServer, Scripted
from tests.proxy.chat_helpers import HELLO, WEATHER_TOOL, post, sent
from tests.proxy.conftest import EventLog

pytestmark = pytest.mark.slow

REPLY = "Hello from the fake Claude, happy to help."  # 8 tokens


def test_answer_usage_buckets_and_cost_never_subtract_the_cache(
    chat_client: openai.OpenAI, fake_anthropic: FakeServer, usage_events: EventLog
) -> None:
    fake_anthropic.app.cache_read = 2
    fake_anthropic.app.cache_write = 1
    raw = chat_client.chat.completions.with_raw_response.create(
        model="Claude Sonnet 4.5", messages=HELLO
    )
    completion = raw.parse()
    assert completion.model == "Claude Sonnet 4.5"
    assert completion.choices[0].message.content == REPLY
    assert completion.choices[0].finish_reason == "stop"
    usage = json.loads(raw.http_response.text, parse_float=Decimal)["usage"]
    # Anthropic said input 2 + cache read 2 + cache write 1: OpenAI's prompt_tokens holds all 5.
    assert usage["prompt_tokens"] == 5
    assert usage["prompt_tokens_details"] == {"cached_tokens": 2, "cache_write_tokens": 1}
    assert usage["completion_tokens"] == 8
    # 2 x $3 + 2 x $0.30 + 1 x $3.75 + 8 x $15, per million
    assert usage["cost"] == Decimal("0.00013035")
    event = usage_events.for_request(raw.headers["x-request-id"])
    assert (event.usage.uncached_input, event.usage.cache_read, event.usage.cache_write) == (
        2,
        2,
        1,
    )
    assert event.cost == Decimal("0.00013035")
    assert event.provider == "anthropic"
    assert event.upstream_request_id == "req_fake_0001"
    request = fake_anthropic.app.received[-1]
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == "sk-ant-fake"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.body["model"] == "claude-sonnet-4-5"
    assert request.body["max_tokens"] == 64000  # Anthropic requires one: the card's maximum


def test_streamed_and_unstreamed_cost_the_same_with_cache_and_thinking(
    chat_client: openai.OpenAI, fake_anthropic: FakeServer, usage_events: EventLog
) -> None:
    fake_anthropic.app.cache_read = 2
    fake_anthropic.app.cache_write = 1
    ask = {"model": "Claude Haiku 4.5", "messages": HELLO, "reasoning_effort": "low"}
    plain = chat_client.chat.completions.with_raw_response.create(**ask)
    streamed = chat_client.chat.completions.with_raw_response.create(
        **ask, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(streamed.parse())
    one = usage_events.for_request(plain.headers["x-request-id"])
    two = usage_events.for_request(streamed.headers["x-request-id"])
    assert one.usage == two.usage
    assert one.usage.reasoning == len(THINKING_TEXT.split())  # thinking split out of output
    assert one.cost == two.cost
    # Haiku 4.5: 2 x $1 + 2 x $0.10 + 1 x $1.25 + (8 + 7) x $5, per million
    assert one.cost == Decimal("0.00007845")
    assert Decimal(str(chunks[-1].usage.model_extra["cost"])) == one.cost
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    thinking = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
        for c in chunks
        if c.choices
    )
    assert (text, thinking) == (REPLY, THINKING_TEXT)
    assert plain.parse().choices[0].message.content == REPLY
    assert all(chunk.model == "Claude Haiku 4.5" for chunk in chunks)


def test_messages_parts_and_sampling_translate_to_anthropic(
    chat_client: openai.OpenAI, fake_anthropic: FakeServer
) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "developer",
            "content": [
                {"type": "text", "text": "Long rules", "cache_control": {"type": "ephemeral"}}
            ],
        },
        {"role": "user", "content": "Look at these."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Two images:"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                },
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ],
        },
    ]
    chat_client.chat.completions.create(
        model="Claude Sonnet 4.5",
        messages=messages,
        stop="END",
        user="end-user-42",
        max_completion_tokens=300,
        temperature=0.5,
        top_p=0.9,
        seed=7,
    )
    body = sent(fake_anthropic)
    assert body["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "Long rules", "cache_control": {"type": "ephemeral"}},
    ]
    # Two user turns in a row become one: Anthropic's roles alternate.
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "Look at these."},
        {"type": "text", "text": "Two images:"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "end-user-42"}
    assert body["max_tokens"] == 300
    # Newer Claude models refuse temperature with top_p: temperature is kept, as documented.
    assert (body["temperature"], "top_p" in body) == (0.5, False)
    assert "seed" not in body
    # Claude Sonnet 4 still takes both.
    chat_client.chat.completions.create(
        model="Claude Sonnet 4", messages=HELLO, temperature=0.5, top_p=0.9
    )
    assert (sent(fake_anthropic)["temperature"], sent(fake_anthropic)["top_p"]) == (0.5, 0.9)


def test_tool_call_round_trip(chat_client: openai.OpenAI, fake_anthropic: FakeServer) -> None:
    question = [{"role": "user", "content": "Weather in Paris?"}]
    first = chat_client.chat.completions.create(
        model="Claude Sonnet 4.5", messages=question, tools=[WEATHER_TOOL], tool_choice="required"
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        {"city": "Paris"},
    )
    body = sent(fake_anthropic)
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    assert body["tool_choice"] == {"type": "any"}
    history = [
        *question,
        choice.message,
        {"role": "tool", "tool_call_id": call.id, "content": "18 degrees and sunny"},
    ]
    answer = chat_client.chat.completions.create(
        model="Claude Sonnet 4.5", messages=history, tools=[WEATHER_TOOL]
    )
    assert answer.choices[0].message.content == "The tool said: 18 degrees and sunny"
    messages = sent(fake_anthropic)["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": call.id, "name": "get_weather", "input": {"city": "Paris"}}
        ],
    }
    assert messages[2] == {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": call.id,
                "content": [{"type": "text", "text": "18 degrees and sunny"}],
            }
        ],
    }


def test_streamed_tool_call_arguments_arrive_incrementally(
    chat_client: openai.OpenAI, fake_anthropic: FakeServer
) -> None:
    chunks = list(
        chat_client.chat.completions.create(
            model="Claude Opus 4.5",
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=[WEATHER_TOOL],
            stream=True,
        )
    )
    calls = [
        c.choices[0].delta.tool_calls[0]
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
    ]
    assert calls[0].id.startswith("toolu_")
    assert calls[0].function.name == "get_weather"
    fragments = [call.function.arguments for call in calls[1:]]
    assert len(fragments) > 1  # streamed in pieces, as Anthropic sent them
    assert json.loads("".join(fragments)) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_choice_forms(
    translating_gateway: LiveServer, api_key: str, fake_anthropic: FakeServer
) -> None:
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"tool_choice": "auto"}, {"type": "auto"}),
        ({"tool_choice": "none"}, {"type": "none"}),
        ({"tool_choice": "required"}, {"type": "any"}),
        (
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
            {"type": "tool", "name": "get_weather"},
        ),
        ({"parallel_tool_calls": False}, {"type": "auto", "disable_parallel_tool_use": True}),
    ]
    for extra, expected in cases:
        response = post(
            translating_gateway,
            api_key,
            {"model": "Claude Sonnet 4.5", "messages": HELLO, "tools": [WEATHER_TOOL], **extra},
        )
        assert response.status_code == 200, response.text
        assert sent(fake_anthropic)["tool_choice"] == expected, extra
    assert response.json()["choices"][0]["message"]["tool_calls"][0]["type"] == "function"


def test_stop_sequences_and_max_tokens_set_the_finish_reason(
    chat_client: openai.OpenAI, fake_anthropic: FakeServer
) -> None:
    stopped = chat_client.chat.completions.create(
        model="Claude Sonnet 4.5", messages=HELLO, stop=["fake"]
    )
    assert stopped.choices[0].message.content == "Hello from the "
    assert stopped.choices[0].finish_reason == "stop"
    cut = chat_client.chat.completions.create(
        model="Claude Sonnet 4.5", messages=HELLO, max_tokens=3
    )
    assert cut.choices[0].message.content == "Hello from the"
    assert cut.choices[0].finish_reason == "length"
    assert sent(fake_anthropic)["max_tokens"] == 3
    streamed = list(
        chat_client.chat.completions.create(
            model="Claude Sonnet 4.5", messages=HELLO, max_tokens=3, stream=True
        )
    )
    assert streamed[-1].choices[0].finish_reason == "length"


def test_json_modes(chat_client: openai.OpenAI, fake_anthropic: FakeServer) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "ok": {"type": "boolean"}},
        "required": ["answer", "ok"],
        "additionalProperties": False,
    }
    json_schema = {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}
    # Claude with structured outputs: constrained decoding through output_config.format.
    native = chat_client.chat.completions.create(
        model="Claude Sonnet 4.5", messages=HELLO, response_format=json_schema
    )
    assert json.loads(native.choices[0].message.content) == {"answer": "hello", "ok": True}
    assert sent(fake_anthropic)["output_config"] == {
        "format": {"type": "json_schema", "schema": schema}
    }
    # Older Claude, and json_object anywhere: a forced tool whose input is the answer.
    for model, response_format in (
        ("Claude Sonnet 4", json_schema),
        ("Claude Sonnet 4.5", {"type": "json_object"}),
    ):
        reply = chat_client.chat.completions.create(
            model=model, messages=HELLO, response_format=response_format
        )
        assert json.loads(reply.choices[0].message.content) == {"answer": "hello", "ok": True}
        assert reply.choices[0].finish_reason == "stop"
        assert reply.choices[0].message.tool_calls is None
        body = sent(fake_anthropic)
        assert body["tool_choice"] == {"type": "tool", "name": "json_response"}
        assert body["tools"][0]["name"] == "json_response"
    streamed = chat_client.chat.completions.create(
        model="Claude Sonnet 4.5",
        messages=HELLO,
        response_format={"type": "json_object"},
        stream=True,
    )
    chunks = list(streamed)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == {"answer": "hello", "ok": True}
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_errors_map_to_openai_shapes(
    translating_gateway: LiveServer, api_key: str, fake_anthropic: FakeServer
) -> None:
    # Anthropic's own validation error: a 400 carrying its message.
    hot = post(
        translating_gateway,
        api_key,
        {"model": "Claude Sonnet 4.5", "messages": HELLO, "temperature": 1.5},
    )
    assert hot.status_code == 400
    assert "temperature: Input should be less than or equal to 1" in hot.json()["error"]["message"]
    assert hot.json()["error"]["type"] == "invalid_request_error"
    # A field no provider knows: refused before anything is sent, as OpenAI would.
    unknown = post(
        translating_gateway,
        api_key,
        {"model": "Claude Sonnet 4.5", "messages": HELLO, "bogus": 1},
    )
    assert (unknown.status_code, unknown.json()["error"]["param"]) == (400, "bogus")
    # Overloaded (529) on every attempt: an upstream error after the retries.
    overloaded = AnthropicError("Overloaded", 529, "overloaded_error").body()
    fake_anthropic.app.script.extend([Scripted(status=529, body=overloaded)] * 2)
    busy = post(translating_gateway, api_key, {"model": "Claude Sonnet 4.5", "messages": HELLO})
    assert busy.status_code == 502
    # Our words for a 5xx, never its body: what happened and the request id to quote.
    assert busy.json()["error"]["message"] == (
        "The upstream (anthropic) is overloaded (HTTP 529). "
        f"Request id: {busy.headers['x-request-id']}."
    )
    # Our credential refused: never the caller's fault, never our key in the message.
    fake_anthropic.app.api_key = "sk-ant-rotated"
    refused = post(translating_gateway, api_key, {"model": "Claude Sonnet 4.5", "messages": HELLO})
    assert refused.status_code == 502
    assert refused.json()["error"]["code"] == "upstream_auth_failed"
    assert "sk-ant" not in refused.text


def test_mid_stream_error_event_ends_the_stream_with_an_error(
    chat_client: openai.OpenAI, fake_anthropic: FakeServer, usage_events: EventLog
) -> None:
    fake_anthropic.app.stream_error_after = 4
    raw = chat_client.chat.completions.with_raw_response.create(
        model="Claude Sonnet 4.5", messages=HELLO, stream=True
    )
    chunks: list[Any] = []
    with pytest.raises(openai.APIError, match="overloaded_error"):
        chunks.extend(raw.parse())
    # What Claude said before it failed reaches the client first, though it came in the same
    # read as the error event.
    said = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert said
    assert "Hello from the fake Claude, happy to help.".startswith(said)
    event = usage_events.for_request(raw.headers["x-request-id"])
    assert event.error_code == "upstream_error"
    # message_start told the input exactly; the output so far is estimated.
    assert (event.usage.uncached_input, event.usage.estimated) == (5, True)


def test_client_disconnect_bills_the_known_input_and_the_output_so_far(
    translating_gateway: LiveServer,
    api_key: str,
    fake_anthropic: FakeServer,
    usage_events: EventLog,
) -> None:
    fake_anthropic.app.script.append(Scripted(chunk_delay=0.2))
    with httpx.stream(
        "POST",
        f"{translating_gateway.url}/v1/chat/completions",
        json={"model": "Claude Sonnet 4.5", "messages": HELLO, "stream": True},
        headers={"authorization": f"Bearer {api_key}"},
        timeout=30,
    ) as response:
        request_id = response.headers["x-request-id"]
        received = b""
        for chunk in response.iter_bytes():
            received += chunk
            if received.count(b"data: ") >= 3:
                break
    event = usage_events.for_request(request_id)
    assert event.client_disconnected
    assert event.usage.estimated
    assert event.usage.uncached_input == 5
    assert 1 <= event.usage.output < 8
    assert event.cost > 0
