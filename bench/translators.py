"""Cost of the provider translators on the hot path, per request and per streamed event.

    .venv/bin/python bench/translators.py

Pure CPU (no sockets): request translation + JSON encoding for a typical tool-using chat
request, and the stream translators per upstream event, next to the OpenAI pass-through; the
same for the Responses API (POST /v1/responses): passed through to OpenAI, and translated
through the chat core to Anthropic (request: Responses -> core -> Anthropic; events: Anthropic
-> core chunk -> Responses events, framed).
"""

import os
import timeit
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import django
import orjson

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenbyte.settings_test")
django.setup()

from billing.pricing import Prices  # noqa: E402
from proxy.gateway.dialects.anthropic_messages.stream import AnthropicEventWriter  # noqa: E402
from proxy.gateway.dialects.responses_events import ResponsesEventWriter  # noqa: E402
from proxy.gateway.dialects.responses_output import ResponseShape  # noqa: E402
from proxy.gateway.dialects.responses_translate import chat_body  # noqa: E402
from proxy.gateway.routing import Card  # noqa: E402
from proxy.gateway.sse import Event  # noqa: E402
from proxy.providers.anthropic.request import anthropic_body  # noqa: E402
from proxy.providers.anthropic.stream import AnthropicStream  # noqa: E402
from proxy.providers.gemini.adapter import GeminiStream  # noqa: E402
from proxy.providers.gemini.request import gemini_body  # noqa: E402
from proxy.providers.openai import OpenAIAdapter, OpenAIStream  # noqa: E402
from proxy.providers.openai_responses import ResponsesEvents  # noqa: E402


def card(upstream_id: str, provider: str) -> Card:
    price = Decimal(1)
    return Card(
        id=1,
        title=upstream_id,
        provider=provider,
        upstream_id=upstream_id,
        type="chat",
        context_length=200000,
        max_output_tokens=64000,
        prices=Prices(price, price, price, price),
        supports_tools=True,
        supports_vision=True,
        supports_json=True,
        supports_reasoning=True,
        first_byte_timeout=None,
        credential_ids=frozenset(),
        names=(upstream_id,),
        created=0,
    )


TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city"],
        },
    },
}
BODY: dict[str, Any] = {
    "model": "x",
    "messages": [
        {"role": "system", "content": "You are helpful. " * 20},
        *[
            {"role": role, "content": "Some earlier turn of the conversation. " * 10}
            for role in ("user", "assistant") * 5
        ],
        {"role": "user", "content": "Weather in Paris?"},
    ],
    "tools": [TOOL] * 3,
    "temperature": 0.5,
    "max_tokens": 500,
}

# The same conversation in the Responses API's shape.
RESPONSES_BODY = {
    "model": "x",
    "instructions": BODY["messages"][0]["content"],
    "input": [
        {"type": "message", "role": m["role"], "content": m["content"]}
        for m in BODY["messages"][1:]
    ],
    "tools": [{"type": "function", **TOOL["function"]}] * 3,
    "temperature": 0.5,
    "max_output_tokens": 500,
}


def frames(events: list[tuple[str, dict[str, object]]]) -> bytes:
    return b"".join(
        b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
        for name, data in events
    )


def per_call(fn: Callable[[], object], number: int) -> float:
    return timeit.timeit(fn, number=number) / number * 1e6


def report(title: str, cases: Mapping[str, Callable[[], object]], number: int) -> None:
    print(title)
    for name, fn in cases.items():
        print(f"  {name:24} {per_call(fn, number):7.2f}")


def main() -> None:
    claude = card("claude-sonnet-4-5", "anthropic")
    gemini = card("gemini-2.5-flash", "gemini")
    gpt = card("gpt-4o", "openai")
    openai = OpenAIAdapter()
    requests = {
        "openai (pass-through)": lambda: orjson.dumps(
            openai.translate_chat_body(BODY, gpt, stream=True)
        ),
        "anthropic": lambda: orjson.dumps(anthropic_body(BODY, claude, stream=True)),
        "gemini": lambda: orjson.dumps(gemini_body(BODY, gemini)),
    }
    report("request translation + orjson encoding, µs per request", requests, 20000)

    def responses_to_claude() -> bytes:
        core, _ = chat_body(RESPONSES_BODY, claude, stream=True)
        return orjson.dumps(anthropic_body(core, claude, stream=True))

    report(
        "Responses API request + orjson encoding, µs per request",
        {
            "openai (pass-through)": lambda: orjson.dumps(
                {**RESPONSES_BODY, "model": gpt.upstream_id}
            ),
            "responses -> anthropic": responses_to_claude,
        },
        20000,
    )

    def event(name: str, data: object) -> Event:
        return Event(name, orjson.dumps(data))

    text_delta = event(
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " a"}},
    )
    gemini_chunk = event(
        "message",
        {
            "candidates": [{"content": {"parts": [{"text": " a"}], "role": "model"}, "index": 0}],
            "usageMetadata": {"promptTokenCount": 10, "totalTokenCount": 10},
        },
    )
    openai_chunk = event(
        "message",
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o",
            "choices": [{"index": 0, "delta": {"content": " a"}, "finish_reason": None}],
        },
    )
    anthropic_stream = AnthropicStream(claude, json_tool=False)
    gemini_stream = GeminiStream(gemini, 1)
    gemini_stream.feed(gemini_chunk)
    openai_stream = OpenAIStream(gpt)
    writer = AnthropicEventWriter(gpt)
    writer.chunk(orjson.loads(openai_chunk.data))
    streams = {
        "openai (pass-through)": lambda: [
            orjson.dumps(c) for c in openai_stream.feed(openai_chunk)
        ],
        "anthropic -> openai": lambda: [orjson.dumps(c) for c in anthropic_stream.feed(text_delta)],
        "gemini -> openai": lambda: [orjson.dumps(c) for c in gemini_stream.feed(gemini_chunk)],
        "openai -> anthropic": lambda: [
            orjson.dumps(e) for c in openai_stream.feed(openai_chunk) for e in writer.chunk(c)
        ],
    }
    report("stream translation + encoding, µs per upstream event", streams, 100000)

    responses_delta = event(
        "response.output_text.delta",
        {
            "type": "response.output_text.delta",
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "delta": " a",
            "logprobs": [],
            "sequence_number": 5,
        },
    )
    passed = ResponsesEvents(gpt, RESPONSES_BODY)
    _, names = chat_body(RESPONSES_BODY, claude, stream=True)
    claude_stream = AnthropicStream(claude, json_tool=False)
    events_out = ResponsesEventWriter(ResponseShape(RESPONSES_BODY, claude, names))
    frames(events_out.chunk(claude_stream.feed(text_delta)[0]))  # past the opening events
    report(
        "Responses API stream, µs per upstream event",
        {
            "openai (pass-through)": lambda: passed.feed(responses_delta),
            "anthropic -> responses": lambda: frames(
                [e for c in claude_stream.feed(text_delta) for e in events_out.chunk(c)]
            ),
        },
        100000,
    )


if __name__ == "__main__":
    main()
