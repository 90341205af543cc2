"""Anthropic's Messages API: OpenAI chat requests translated to it, and /v1/messages passed on.

Request translation: anthropic_request.py; stream translation and usage: anthropic_stream.py.
"""

import time
from typing import Any

import orjson

from billing.usage import Usage
from proxy.gateway.errors import UpstreamError
from proxy.gateway.routing import Card, Upstream
from proxy.providers.anthropic.claude_models import fit_to_model
from proxy.providers.anthropic.request import JSON_TOOL, anthropic_body, uses_json_tool
from proxy.providers.anthropic.search import message_searches, url_citations
from proxy.providers.anthropic.stream import FINISH_REASONS, AnthropicStream, usage_from_anthropic
from proxy.providers.base import (
    ProviderAdapter,
    StreamTranslator,
    get_headers,
    json_headers,
    upstream_url,
)
from proxy.providers.openai import parse_json_object
from proxy.providers.priced import check_anthropic_server_tools
from proxy.upstream.request import UpstreamRequest

ANTHROPIC_VERSION = b"2023-06-01"
MESSAGES_PATH = "/v1/messages"
MODELS_PATH = "/v1/models"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"


def anthropic_headers(
    upstream: Upstream, *, stream: bool, beta: bytes | None = None
) -> list[tuple[bytes, bytes]]:
    auth = [(b"x-api-key", upstream.api_key.encode()), (b"anthropic-version", ANTHROPIC_VERSION)]
    if beta:
        auth.append((b"anthropic-beta", beta))
    return json_headers(*auth, stream=stream)


def completion_from_message(data: dict[str, Any], card: Card, *, json_tool: bool) -> dict[str, Any]:
    """An Anthropic Message as an OpenAI chat.completion (usage is set by the caller)."""
    texts: list[str] = []
    reasoning: list[str] = []
    thinking_blocks: list[dict[str, Any]] = []
    tool_calls: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    offset = 0  # where the next text block starts in the content
    content = data.get("content") or []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and json_tool:
            continue  # JSON mode: the content is the JSON tool's input alone, never prose with it
        if kind == "text":
            text = str(block.get("text", ""))
            annotations += url_citations(block, offset, offset + len(text))
            offset += len(text)
            texts.append(text)
        elif kind == "thinking":
            reasoning.append(str(block.get("thinking", "")))
            thinking_blocks.append(block)
        elif kind == "redacted_thinking":
            thinking_blocks.append(block)
        elif kind == "tool_use" and json_tool and block.get("name") == JSON_TOOL:
            text = orjson.dumps(block.get("input") or {}).decode()
            offset += len(text)
            texts.append(text)
        elif kind == "tool_use":
            tool_calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not tool_calls else None,
        "refusal": None,
    }
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if thinking_blocks:
        message["thinking_blocks"] = thinking_blocks
    if tool_calls:
        message["tool_calls"] = tool_calls
    if annotations:
        message["annotations"] = annotations
    searches = message_searches(content if isinstance(content, list) else [])
    if searches:
        message["web_search_calls"] = searches
    finish = FINISH_REASONS.get(str(data.get("stop_reason")), "stop")
    if finish == "tool_calls" and not tool_calls:
        finish = "stop"  # only the JSON-mode tool was called: that is the answer
    return {
        "id": data.get("id"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": card.title,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
    }


class AnthropicAdapter(ProviderAdapter):
    provider = "anthropic"

    def models_request(self, upstream: Upstream) -> UpstreamRequest:
        auth = (b"x-api-key", upstream.api_key.encode())
        return UpstreamRequest(
            "GET",
            upstream_url(upstream.base_url, MODELS_PATH),
            get_headers(auth, (b"anthropic-version", ANTHROPIC_VERSION)),
            b"",
        )

    # --- /v1/chat/completions -----------------------------------------------------------
    def chat_request(
        self, body: dict[str, Any], card: Card, upstream: Upstream, *, stream: bool
    ) -> UpstreamRequest:
        return UpstreamRequest(
            "POST",
            upstream_url(upstream.base_url, MESSAGES_PATH),
            anthropic_headers(upstream, stream=stream),
            orjson.dumps(fit_to_model(anthropic_body(body, card, stream=stream), card.upstream_id)),
        )

    def chat_response(
        self, payload: bytes, card: Card, body: dict[str, Any]
    ) -> tuple[dict[str, Any], Usage]:
        data, usage = self.messages_response(payload, card)
        completion = completion_from_message(data, card, json_tool=uses_json_tool(body, card))
        return completion, usage

    def chat_stream(self, card: Card, body: dict[str, Any]) -> StreamTranslator:
        return AnthropicStream(card, json_tool=uses_json_tool(body, card))

    # --- /v1/messages, to an Anthropic card: the client's body, passed on ---------------
    def messages_request(
        self,
        body: dict[str, Any],
        card: Card,
        upstream: Upstream,
        *,
        stream: bool,
        beta: bytes | None,
        path: str = MESSAGES_PATH,
    ) -> UpstreamRequest:
        if path == MESSAGES_PATH:  # counting tokens runs no tool and costs nothing
            check_anthropic_server_tools(body, card)
        return UpstreamRequest(
            "POST",
            upstream_url(upstream.base_url, path),
            anthropic_headers(upstream, stream=stream, beta=beta),
            orjson.dumps({**fit_to_model(body, card.upstream_id), "model": card.upstream_id}),
        )

    def messages_response(self, payload: bytes, card: Card) -> tuple[dict[str, Any], Usage]:
        data = parse_json_object(payload, card.provider)
        usage = usage_from_anthropic(data.get("usage"))
        if usage is None:
            raise UpstreamError(f"{card.provider} sent no usage; the request cannot be priced.")
        data["model"] = card.title
        return data, usage
