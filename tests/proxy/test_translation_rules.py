"""The pure translators, rule by rule: no server, no database."""

from dataclasses import replace
from decimal import Decimal
from typing import Any

import orjson
import pytest

from billing.usage import Usage
from proxy.gateway.dialects.anthropic_messages.stream import AnthropicEventWriter
from proxy.gateway.dialects.anthropic_messages.translate import chat_body
from proxy.gateway.errors import InvalidRequest
from proxy.providers.anthropic.request import anthropic_body
from proxy.providers.anthropic.stream import AnthropicStream, usage_from_anthropic
from tests.proxy.translation_helpers import HELLO, SONNET, card, events


def test_anthropic_usage_maps_one_to_one_and_splits_thinking() -> None:
    raw = {
        "input_tokens": 10,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 20,
        "output_tokens": 50,
        "output_tokens_details": {"thinking_tokens": 30},
    }
    assert usage_from_anthropic(raw) == Usage(
        uncached_input=10, cache_read=100, cache_write=20, output=20, reasoning=30
    )
    # Nothing is subtracted, so huge cache reads never make the input negative.
    assert usage_from_anthropic(
        {"input_tokens": 1, "cache_read_input_tokens": 9000, "output_tokens": 2}
    ) == Usage(uncached_input=1, cache_read=9000, output=2)


@pytest.mark.parametrize(
    ("effort", "limit", "budget", "max_tokens"),
    [
        ("minimal", None, 1024, 32000),
        ("low", None, 1024, 32000),
        ("medium", None, 8192, 32000),
        ("high", 20000, 19999, 20000),  # the budget fits inside the client's limit
        ("xhigh", None, 31999, 32000),  # and inside the card's maximum
    ],
)
def test_reasoning_effort_budgets(
    effort: str, limit: int | None, budget: int, max_tokens: int
) -> None:
    body: dict[str, Any] = {"model": "x", "messages": HELLO, "reasoning_effort": effort}
    if limit:
        body["max_completion_tokens"] = limit
    out = anthropic_body(body, SONNET, stream=False)
    assert out["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert out["max_tokens"] == max_tokens
    assert "thinking" not in anthropic_body(
        {**body, "reasoning_effort": "none"}, SONNET, stream=False
    )


def test_tool_results_open_the_user_turn_and_turns_alternate() -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "w", "arguments": '{"c": 1}'}}
            ],
        },
        {"role": "user", "content": "also, hurry"},
        {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
    ]
    out = anthropic_body({"model": "x", "messages": messages}, SONNET, stream=False)
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
    assert out["messages"][1]["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "t1", "name": "w", "input": {"c": 1}},
    ]
    assert [b["type"] for b in out["messages"][2]["content"]] == ["tool_result", "text"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"functions": []}, "functions"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"mystery": 1}, "mystery"),
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        (
            {
                "tool_choice": "sometimes",
                "tools": [{"type": "function", "function": {"name": "w"}}],
            },
            "tool_choice",
        ),
    ],
)
def test_fields_claude_cannot_honour_are_refused_by_name(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as error:
        anthropic_body({"model": "x", "messages": HELLO, **body}, SONNET, stream=False)
    assert error.value.param == param


def test_web_search_options_are_claudes_web_search_where_the_card_prices_it() -> None:
    location = {"city": "Paris", "country": "FR", "timezone": "Europe/Paris"}
    search = {
        "search_context_size": "high",  # no equivalent: Claude picks what it reads
        "user_location": {"type": "approximate", "approximate": location},
        "max_uses": 3,  # written in by the ceiling (pipeline/server_tools.py)
    }
    body = {"model": "x", "messages": HELLO, "web_search_options": search}
    with pytest.raises(InvalidRequest) as unpriced:  # served free otherwise
        anthropic_body(body, SONNET, stream=False)
    assert unpriced.value.param == "web_search_options"
    prices = replace(SONNET.prices, server_tools=(("web_search", Decimal("0.01")),))
    out = anthropic_body(body, replace(SONNET, prices=prices), stream=False)
    assert out["tools"] == [
        {
            "type": "web_search_20250305",
            "name": "web_search",
            "max_uses": 3,
            "user_location": {"type": "approximate", **location},
        }
    ]


def test_no_op_values_of_unsupported_fields_are_fine() -> None:
    out = anthropic_body(
        {
            "model": "x",
            "messages": HELLO,
            "n": 1,
            "presence_penalty": 0,
            "modalities": ["text"],
            "store": False,
        },
        SONNET,
        stream=True,
    )
    assert out["stream"] is True
    assert set(out) == {"model", "messages", "max_tokens", "stream"}


def test_parts_claude_cannot_take_are_refused() -> None:
    bad_image = [
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}],
        }
    ]
    with pytest.raises(InvalidRequest, match="image/tiff"):
        anthropic_body({"model": "x", "messages": bad_image}, SONNET, stream=False)
    audio = [
        {
            "role": "user",
            "content": [{"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}],
        }
    ]
    with pytest.raises(InvalidRequest) as error:
        anthropic_body({"model": "x", "messages": audio}, SONNET, stream=False)
    assert error.value.param == "messages[0].content[0].type"
    broken = [
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "t", "type": "function", "function": {"name": "w", "arguments": "{oops"}}
            ],
        }
    ]
    with pytest.raises(InvalidRequest) as error:
        anthropic_body({"model": "x", "messages": broken}, SONNET, stream=False)
    assert error.value.param == "messages[0].tool_calls[0].function.arguments"


def test_pdf_files_become_documents() -> None:
    pdf = [
        {
            "role": "user",
            "content": [
                {
                    "type": "file",
                    "file": {
                        "filename": "a.pdf",
                        "file_data": "data:application/pdf;base64,JVBERi0=",
                    },
                }
            ],
        }
    ]
    out = anthropic_body({"model": "x", "messages": pdf}, SONNET, stream=False)
    assert out["messages"][0]["content"] == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
            "title": "a.pdf",
        }
    ]


# --- Anthropic stream -> OpenAI chunks ----------------------------------------------------


def test_anthropic_stream_with_two_tool_calls_and_the_usage() -> None:
    stream = AnthropicStream(SONNET, json_tool=False)
    chunks = []
    for event in events(
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "usage": {"input_tokens": 9, "cache_read_input_tokens": 4, "output_tokens": 1},
                },
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "tool_use", "id": "a", "name": "f", "input": {}},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": '{"x":'},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": "1}"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "b", "name": "g", "input": {}},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": "{}"},
            },
        ),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use"},
                "usage": {"output_tokens": 12},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ):
        chunks += stream.feed(event)
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if "tool_calls" in c["choices"][0]["delta"]
    ]
    assert [(c["index"], c.get("id")) for c in calls] == [
        (0, "a"),
        (0, None),
        (0, None),
        (1, "b"),
        (1, None),
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert stream.done
    # message_delta's cumulative output, message_start's input: nothing lost, nothing doubled.
    assert stream.usage == Usage(uncached_input=9, cache_read=4, output=12)


# --- OpenAI -> Gemini ---------------------------------------------------------------------


def test_messages_to_the_core_puts_tool_results_first_and_maps_thinking_to_effort() -> None:
    gpt = card("o3", "openai")
    body = {
        "model": "o3",
        "max_tokens": 100,
        "thinking": {"type": "enabled", "budget_tokens": 10000},
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "tools": [{"name": "w", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hm", "signature": "s"},
                    {"type": "tool_use", "id": "t", "name": "w", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "and"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "content": [{"type": "text", "text": "ok"}],
                        "is_error": True,
                    },
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "AA"},
                    },
                ],
            },
        ],
    }
    out = chat_body(body, gpt, stream=False)
    assert out["reasoning_effort"] == "high"
    assert (out["tool_choice"], out["parallel_tool_calls"]) == ("auto", False)
    assert out["messages"][1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "t", "type": "function", "function": {"name": "w", "arguments": "{}"}}
        ],
    }
    assert out["messages"][2] == {"role": "tool", "tool_call_id": "t", "content": "Error: ok"}
    assert out["messages"][3] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "and"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
        ],
    }
    # A model that does not reason simply does not get the setting.
    assert "reasoning_effort" not in chat_body(
        body, card("gpt-4o", "openai", reasoning=False), stream=False
    )


def test_event_writer_opens_and_closes_blocks_in_order() -> None:
    writer = AnthropicEventWriter(card("gpt-4o", "openai"))

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": "c1", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    out = writer.chunk(chunk({"role": "assistant", "content": ""}))
    out += writer.chunk(chunk({"content": "Let me check."}))
    out += writer.chunk(
        chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "call_1", "function": {"name": "w", "arguments": ""}}
                ]
            }
        )
    )
    out += writer.chunk(chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}))
    out += writer.chunk(chunk({}, "tool_calls"))
    out += writer.close(Usage(uncached_input=4, cache_read=2, output=3), Decimal("0.5"))
    names = [name for name, _ in out]
    assert names == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert [data.get("index") for name, data in out if name.startswith("content_block")] == [
        0,
        0,
        0,
        1,
        1,
        1,
    ]
    delta = out[-2][1]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert orjson.loads(orjson.dumps(delta["usage"])) == {
        "input_tokens": 4,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 2,
        "output_tokens": 3,
        "cost": 0.5,
    }
