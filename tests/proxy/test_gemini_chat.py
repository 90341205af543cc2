"""Gemini behind /v1/chat/completions: the official openai SDK in front, a strict fake of the
Gemini API behind (errors: test_gemini_errors.py; embeddings: test_gemini_embeddings.py)."""

import json
from decimal import Decimal
from typing import Any

import openai
import pytest

from tests.conftest import LiveServer
from tests.fakes.gemini_rules import signature_for
from tests.fakes.server import FakeServer
from tests.proxy.chat_helpers import HELLO, post, sent
from tests.proxy.conftest import EventLog

pytestmark = pytest.mark.slow

REPLY = "Hello from the fake Gemini, happy to help."  # 8 tokens
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def test_answer_usage_with_cache_and_thoughts_and_its_cost(
    chat_client: openai.OpenAI, fake_gemini: FakeServer, usage_events: EventLog
) -> None:
    fake_gemini.app.cached_tokens = 1
    fake_gemini.app.thoughts_tokens = 4
    raw = chat_client.chat.completions.with_raw_response.create(
        model="Gemini 2.5 Flash", messages=HELLO
    )
    completion = raw.parse()
    assert completion.model == "Gemini 2.5 Flash"
    assert completion.choices[0].message.content == REPLY
    assert completion.choices[0].finish_reason == "stop"
    usage = json.loads(raw.http_response.text, parse_float=Decimal)["usage"]
    # promptTokenCount (2) includes the cached token; thoughts are completion tokens.
    assert (usage["prompt_tokens"], usage["prompt_tokens_details"]["cached_tokens"]) == (2, 1)
    assert usage["completion_tokens"] == 12
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 4
    # 1 x $0.30 + 1 x $0.03 + (8 + 4) x $2.50, per million: thinking billed as output
    assert usage["cost"] == Decimal("0.00003033")
    event = usage_events.for_request(raw.headers["x-request-id"])
    assert (event.usage.uncached_input, event.usage.cache_read) == (1, 1)
    assert (event.usage.output, event.usage.reasoning) == (8, 4)
    assert event.cost == Decimal("0.00003033")
    request = fake_gemini.app.received[-1]
    assert request.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert request.headers["x-goog-api-key"] == "fake-gemini-key"
    assert request.body == {"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]}


def test_streamed_and_unstreamed_cost_the_same(
    chat_client: openai.OpenAI, fake_gemini: FakeServer, usage_events: EventLog
) -> None:
    fake_gemini.app.cached_tokens = 1
    fake_gemini.app.thoughts_tokens = 4
    plain = chat_client.chat.completions.with_raw_response.create(
        model="Gemini 2.5 Pro", messages=HELLO
    )
    streamed = chat_client.chat.completions.with_raw_response.create(
        model="Gemini 2.5 Pro", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(streamed.parse())
    assert fake_gemini.app.received[-1].path == (
        "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    )
    one = usage_events.for_request(plain.headers["x-request-id"])
    two = usage_events.for_request(streamed.headers["x-request-id"])
    assert one.usage == two.usage
    assert one.cost == two.cost
    # 1 x $1.25 + 1 x $0.125 + 12 x $10, per million
    assert one.cost == Decimal("0.000121375")
    assert Decimal(str(chunks[-1].usage.model_extra["cost"])) == one.cost
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_messages_parts_and_generation_config(
    chat_client: openai.OpenAI, fake_gemini: FakeServer
) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": "Answer in English."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe:"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ],
        },
    ]
    reply = chat_client.chat.completions.create(
        model="Gemini 2.5 Flash",
        messages=messages,
        max_tokens=100,
        temperature=0.5,
        top_p=0.9,
        stop=["END"],
        n=2,
        seed=7,
        presence_penalty=0.1,
        user="end-user-42",
    )
    assert [choice.index for choice in reply.choices] == [0, 1]
    body = sent(fake_gemini)
    assert body["systemInstruction"] == {
        "parts": [{"text": "Be brief."}, {"text": "Answer in English."}]
    }
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["contents"][2]["parts"] == [
        {"text": "Describe:"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"fileUri": "https://example.com/cat.jpg", "mimeType": "image/jpeg"}},
    ]
    assert body["generationConfig"] == {
        "maxOutputTokens": 100,
        "temperature": 0.5,
        "topP": 0.9,
        "seed": 7,
        "presencePenalty": 0.1,
        "candidateCount": 2,
        "stopSequences": ["END"],
    }


def test_json_modes_and_schema_reduction(
    chat_client: openai.OpenAI, fake_gemini: FakeServer
) -> None:
    loose = chat_client.chat.completions.create(
        model="Gemini 2.5 Flash", messages=HELLO, response_format={"type": "json_object"}
    )
    assert json.loads(loose.choices[0].message.content) == {"answer": "hello", "ok": True}
    assert sent(fake_gemini)["generationConfig"] == {"responseMimeType": "application/json"}
    # A schema as OpenAI clients write them (pydantic style): refs, unions, extras.
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {
            "answer": {"type": "string", "format": "uri-reference"},
            "ok": {"type": ["boolean", "null"]},
            "kind": {"const": "greeting"},
            "place": {"$ref": "#/$defs/Place"},
            "tags": {
                "type": "array",
                "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            },
        },
        "required": ["answer", "ok", "ghost"],
        "additionalProperties": False,
        "$defs": {
            "Place": {
                "type": "object",
                "properties": {"city": {"type": "string", "minLength": 1}},
                "additionalProperties": False,
            }
        },
    }
    strict = chat_client.chat.completions.create(
        model="Gemini 2.5 Flash",
        messages=HELLO,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "reply", "schema": schema, "strict": True},
        },
    )
    assert json.loads(strict.choices[0].message.content) == {"answer": "hello", "ok": True}
    assert sent(fake_gemini)["generationConfig"]["responseSchema"] == {
        "type": "OBJECT",
        "properties": {
            "answer": {"type": "STRING"},
            "ok": {"type": "BOOLEAN", "nullable": True},
            "kind": {"type": "STRING", "enum": ["greeting"]},
            "place": {"type": "OBJECT", "properties": {"city": {"type": "STRING", "minLength": 1}}},
            "tags": {
                "type": "ARRAY",
                "items": {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]},
            },
        },
        "required": ["answer", "ok"],
    }


def test_tool_round_trip_with_thought_signatures_on_gemini_3(
    chat_client: openai.OpenAI, fake_gemini: FakeServer
) -> None:
    question = [{"role": "user", "content": "Weather in Paris?"}]
    first = chat_client.chat.completions.create(
        model="Gemini 3 Pro Preview",
        messages=question,
        tools=[WEATHER_TOOL],
        tool_choice="required",
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        {"city": "Paris"},
    )
    # The signature rides where Google's own OpenAI-compatible API puts it.
    assert call.model_extra["extra_content"] == {
        "google": {"thought_signature": signature_for("get_weather")}
    }
    body = sent(fake_gemini)
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {"city": {"type": "STRING"}},
                        "required": ["city"],
                    },
                }
            ]
        }
    ]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    history = [
        *question,
        choice.message,  # as the SDK returned it, extra_content included
        {"role": "tool", "tool_call_id": call.id, "content": "18 degrees and sunny"},
    ]
    answer = chat_client.chat.completions.create(
        model="Gemini 3 Pro Preview", messages=history, tools=[WEATHER_TOOL]
    )
    assert answer.choices[0].message.content == "The tool said: 18 degrees and sunny"
    contents = sent(fake_gemini)["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [
            {
                "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                "thoughtSignature": signature_for("get_weather"),
            }
        ],
    }
    assert contents[2] == {
        "role": "user",
        "parts": [
            {
                "functionResponse": {
                    "name": "get_weather",
                    "response": {"output": "18 degrees and sunny"},
                }
            }
        ],
    }
    # A client that kept only id/type/function still gets through: Google's documented
    # placeholder stands in for the lost signature.
    bare = {"id": call.id, "type": "function", "function": call.function.model_dump()}
    history[1] = {"role": "assistant", "content": None, "tool_calls": [bare]}
    again = chat_client.chat.completions.create(
        model="Gemini 3 Pro Preview", messages=history, tools=[WEATHER_TOOL]
    )
    assert again.choices[0].message.content == "The tool said: 18 degrees and sunny"
    assert sent(fake_gemini)["contents"][1]["parts"][0]["thoughtSignature"] == (
        "skip_thought_signature_validator"
    )


def test_streamed_tool_call_and_named_tool_choice(
    chat_client: openai.OpenAI, fake_gemini: FakeServer
) -> None:
    chunks = list(
        chat_client.chat.completions.create(
            model="Gemini 2.5 Flash",
            messages=[{"role": "user", "content": "Weather?"}],
            tools=[WEATHER_TOOL],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            stream=True,
        )
    )
    assert sent(fake_gemini)["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }
    calls = [
        c.choices[0].delta.tool_calls[0]
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
    ]
    assert len(calls) == 1
    assert calls[0].index == 0
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_finish_reasons(chat_client: openai.OpenAI, fake_gemini: FakeServer) -> None:
    cut = chat_client.chat.completions.create(
        model="Gemini 2.0 Flash", messages=HELLO, max_tokens=3
    )
    assert (cut.choices[0].message.content, cut.choices[0].finish_reason) == (
        "Hello from the",
        "length",
    )
    stopped = chat_client.chat.completions.create(
        model="Gemini 2.0 Flash", messages=HELLO, stop="fake"
    )
    assert (stopped.choices[0].message.content, stopped.choices[0].finish_reason) == (
        "Hello from the ",
        "stop",
    )
    unsafe = [{"role": "user", "content": "something unsafe"}]
    blocked = chat_client.chat.completions.create(model="Gemini 2.0 Flash", messages=unsafe)
    assert blocked.choices[0].finish_reason == "content_filter"
    assert blocked.choices[0].message.content == ""
    streamed = list(
        chat_client.chat.completions.create(model="Gemini 2.0 Flash", messages=unsafe, stream=True)
    )
    assert streamed[-1].choices[0].finish_reason == "content_filter"


def test_reasoning_effort_as_thinking_budgets_and_levels(
    translating_gateway: LiveServer, api_key: str, fake_gemini: FakeServer
) -> None:
    cases = [
        ("Gemini 2.5 Flash", "low", {"thinkingBudget": 1024}),
        ("Gemini 2.5 Flash", "high", {"thinkingBudget": 24576}),
        ("Gemini 2.5 Flash", "none", {"thinkingBudget": 0}),
        ("Gemini 2.5 Pro", "none", {"thinkingBudget": 128}),
        ("Gemini 3 Pro Preview", "medium", {"thinkingLevel": "high"}),
        ("Gemini 3 Pro Preview", "minimal", {"thinkingLevel": "low"}),
    ]
    for model, effort, expected in cases:
        response = post(
            translating_gateway,
            api_key,
            {"model": model, "messages": HELLO, "reasoning_effort": effort},
        )
        assert response.status_code == 200, response.text
        assert sent(fake_gemini)["generationConfig"]["thinkingConfig"] == expected, (model, effort)
    refused = post(
        translating_gateway,
        api_key,
        {"model": "Gemini 2.0 Flash", "messages": HELLO, "reasoning_effort": "low"},
    )
    assert (refused.status_code, refused.json()["error"]["param"]) == (400, "reasoning_effort")
