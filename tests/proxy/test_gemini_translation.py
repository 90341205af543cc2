"""The pure Gemini translators, rule by rule: usage, schema reduction, function responses and
the stream; no server, no database."""

import orjson
import pytest

from billing.usage import Usage
from proxy.gateway.errors import InvalidRequest
from proxy.gateway.sse import Event
from proxy.providers.gemini.adapter import GeminiStream, usage_from_gemini
from proxy.providers.gemini.request import gemini_body
from proxy.providers.gemini.schema import gemini_schema
from tests.proxy.translation_helpers import HELLO, card


def test_gemini_usage_takes_the_cache_out_of_the_prompt_and_bills_thoughts() -> None:
    raw = {
        "promptTokenCount": 100,
        "cachedContentTokenCount": 60,
        "toolUsePromptTokenCount": 5,
        "candidatesTokenCount": 7,
        "thoughtsTokenCount": 40,
    }
    assert usage_from_gemini(raw) == Usage(uncached_input=45, cache_read=60, output=7, reasoning=40)


# --- OpenAI -> Anthropic ------------------------------------------------------------------


def test_gemini_schema_reduction_rules() -> None:
    schema = {
        "type": "object",
        "properties": {
            "when": {"type": "string", "format": "date-time"},
            "size": {"type": "integer", "enum": [1, 2]},  # Gemini's enums are strings only
            "either": {"oneOf": [{"type": "string"}, {"type": "null"}]},
            "both": {
                "allOf": [
                    {"properties": {"a": {"type": "string"}}, "required": ["a"]},
                    {"properties": {"b": {"type": "number"}}},
                ]
            },
            "pair": {"type": "array", "items": [{"type": "string"}, {"type": "number"}]},
            "node": {"$ref": "#/definitions/Node"},
        },
        "definitions": {
            "Node": {"type": "object", "properties": {"child": {"$ref": "#/definitions/Node"}}}
        },
        "patternProperties": {"^x": {"type": "string"}},
    }
    out = gemini_schema(schema)
    props = out["properties"]
    assert props["when"] == {"type": "STRING", "format": "date-time"}
    assert props["size"] == {"type": "INTEGER"}
    assert props["either"] == {"type": "STRING", "nullable": True}
    assert props["both"] == {
        "type": "OBJECT",
        "properties": {"a": {"type": "STRING"}, "b": {"type": "NUMBER"}},
        "required": ["a"],
    }
    assert props["pair"] == {"type": "ARRAY", "items": {"type": "STRING"}}
    # A recursive $ref is inlined down to a bounded depth, then cut.
    depth, node = 0, props["node"]
    while "properties" in node:
        node, depth = node["properties"]["child"], depth + 1
    assert 4 < depth < 20
    assert "patternProperties" not in out


def test_gemini_function_responses_need_their_call() -> None:
    gemini = card("gemini-2.5-flash", "gemini")
    orphan = [*HELLO, {"role": "tool", "tool_call_id": "nope", "content": "x"}]
    with pytest.raises(InvalidRequest) as error:
        gemini_body({"model": "x", "messages": orphan}, gemini)
    assert error.value.param == "messages[1].tool_call_id"
    parallel = [
        *HELLO,
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "1", "type": "function", "function": {"name": "a", "arguments": "{}"}},
                {"id": "2", "type": "function", "function": {"name": "b", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "1", "content": '{"t": 20}'},
        {"role": "tool", "tool_call_id": "2", "content": "[1, 2]"},
    ]
    out = gemini_body({"model": "x", "messages": parallel}, gemini)
    # Both responses in one user turn, as Gemini requires; JSON objects pass as they are.
    assert out["contents"][2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "a", "response": {"t": 20}}},
            {"functionResponse": {"name": "b", "response": {"output": [1, 2]}}},
        ],
    }


def test_gemini_stream_with_two_candidates_finishes_when_both_have() -> None:
    stream = GeminiStream(card("gemini-2.5-flash", "gemini"), choices=2)
    first = {
        "candidates": [{"content": {"parts": [{"text": "a"}]}, "index": 0, "finishReason": "STOP"}]
    }
    second = {
        "candidates": [
            {"content": {"parts": [{"text": "b"}]}, "index": 1, "finishReason": "MAX_TOKENS"}
        ],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2},
    }
    chunks = stream.feed(Event("message", orjson.dumps(first)))
    assert not stream.done
    chunks += stream.feed(Event("message", orjson.dumps(second)))
    assert stream.done
    finishes = [
        (c["choices"][0]["index"], c["choices"][0]["finish_reason"])
        for c in chunks
        if c["choices"][0]["finish_reason"]
    ]
    assert finishes == [(0, "stop"), (1, "length")]
    assert stream.usage == Usage(uncached_input=3, output=2)


# --- Anthropic /v1/messages -> OpenAI-shaped ----------------------------------------------
