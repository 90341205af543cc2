"""Anthropic's SSE events (message_start, content_block_*, message_delta, message_stop, ping,
error) as OpenAI chat.completion.chunk dicts, tool-call arguments streamed as they come; web
searches and their citations as search.py says, each once its block is whole."""

import time
from dataclasses import replace
from typing import Any

import orjson

from billing.usage import Usage, estimate_tokens, prompt_chars
from proxy.gateway.errors import UpstreamError
from proxy.gateway.routing import Card
from proxy.gateway.sse import Event
from proxy.providers.anthropic.request import JSON_TOOL
from proxy.providers.anthropic.search import (
    search_call,
    search_query,
    search_status,
    url_citations,
)
from proxy.providers.base import StreamTranslator
from proxy.providers.translate import token_count
from proxy.upstream.wording import stream_failure

_JSON_BLOCK = -1  # the block index map's marker for the JSON-mode tool
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def merged_usage(start: dict[str, Any], delta: Any) -> dict[str, Any]:
    """message_delta's usage counts are cumulative and win; message_start's fill the gaps."""
    if not isinstance(delta, dict):
        return start
    return {**start, **{key: value for key, value in delta.items() if value is not None}}


def stream_error(data: dict[str, Any], provider: str) -> UpstreamError:
    return stream_failure(provider, data.get("error"))


# usage.server_tool_use's counts, by the catalog's name for the tool's price.
SERVER_TOOL_COUNTS = {"web_search": "web_search_requests", "web_fetch": "web_fetch_requests"}


def usage_from_anthropic(raw: Any) -> Usage | None:
    """Anthropic's input_tokens already excludes cache reads and writes: the three input counts
    map one-to-one onto the buckets, nothing subtracted. Cache writes split by TTL where
    cache_creation says so (the 1-hour ones have their own price). Thinking is inside
    output_tokens, split out when Anthropic says how much of it there was."""
    if not isinstance(raw, dict):
        return None
    output = token_count(raw.get("output_tokens"))
    details = raw.get("output_tokens_details")
    thinking = min(
        token_count(details.get("thinking_tokens")) if isinstance(details, dict) else 0, output
    )
    written = token_count(raw.get("cache_creation_input_tokens"))
    by_ttl = raw.get("cache_creation")
    one_hour = (
        min(token_count(by_ttl.get("ephemeral_1h_input_tokens")), written)
        if isinstance(by_ttl, dict)
        else 0
    )
    server = raw.get("server_tool_use")
    server = server if isinstance(server, dict) else {}
    tools = {name: token_count(server.get(key)) for name, key in SERVER_TOOL_COUNTS.items()}
    tier = raw.get("service_tier")
    return Usage(
        uncached_input=token_count(raw.get("input_tokens")),
        cache_read=token_count(raw.get("cache_read_input_tokens")),
        cache_write=written - one_hour,
        cache_write_1h=one_hour,
        output=output - thinking,
        reasoning=thinking,
        service_tier=tier if isinstance(tier, str) else None,
        server_tools={name: count for name, count in tools.items() if count},
    )


def usage_of(raw: dict[str, Any]) -> Usage:
    return usage_from_anthropic(raw) or Usage()


class AnthropicStream(StreamTranslator):
    def __init__(self, card: Card, *, json_tool: bool) -> None:
        super().__init__(card)
        self.json_tool = json_tool
        self.start_usage: dict[str, Any] = {}
        self.tool_of_block: dict[int, int] = {}  # content block index -> tool call index
        self.thinking: dict[int, list[str]] = {}  # content block index -> thinking so far
        self.signatures: dict[int, str] = {}
        self.offset = 0  # characters of content sent so far
        # Text blocks open: block index -> (where it starts in the content, its citations).
        self.cited: dict[int, tuple[int, list[Any]]] = {}
        # Web searches: block index -> (call id, its input so far); call id -> query, once whole.
        self.search_blocks: dict[int, tuple[str, list[str]]] = {}
        self.queries: dict[str, str] = {}
        self.annotations_sent = self.searches_sent = 0

    def feed(self, event: Event) -> list[dict[str, Any]]:
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return []
        if not isinstance(data, dict):
            return []
        kind = data.get("type")
        if kind == "content_block_delta":
            return self._delta(data)
        if kind == "content_block_start":
            return self._block_start(data)
        if kind == "content_block_stop":
            return self._block_stop(data)
        if kind == "message_start":
            message = data["message"] if isinstance(data.get("message"), dict) else {}
            self.response_id = str(message.get("id", ""))
            self.created = int(time.time())
            usage = message.get("usage")
            self.start_usage = usage if isinstance(usage, dict) else {}
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "message_delta":
            self.usage = usage_of(merged_usage(self.start_usage, data.get("usage")))
            reason = (data.get("delta") or {}).get("stop_reason")
            finish = FINISH_REASONS.get(str(reason), "stop")
            called = any(value != _JSON_BLOCK for value in self.tool_of_block.values())
            if finish == "tool_calls" and not called:
                finish = "stop"  # only the JSON-mode tool was called: that is the answer
            self.finish_reason = finish
            return [self._chunk({}, finish)]
        if kind == "message_stop":
            self.done = True
        elif kind == "error":
            raise stream_error(data, self.card.provider)
        return []  # ping, and event types added after this was written

    def _block_start(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        index = data.get("index")
        block = data.get("content_block") or {}
        kind = block.get("type")
        if not isinstance(index, int):
            return []
        if kind == "tool_use":
            if self.json_tool and block.get("name") == JSON_TOOL:
                self.tool_of_block[index] = _JSON_BLOCK
                return []
            tool_index = sum(value != _JSON_BLOCK for value in self.tool_of_block.values())
            self.tool_of_block[index] = tool_index
            call = {
                "index": tool_index,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if kind == "thinking":
            self.thinking[index] = [str(block.get("thinking", ""))]
        elif kind == "redacted_thinking":
            return [self._chunk({"thinking_blocks": [block]})]
        elif kind == "text" and not self.json_tool:
            self.cited[index] = (self.offset, list(block.get("citations") or ()))
            if block.get("text"):
                return [self._content(str(block["text"]))]
        elif kind == "server_tool_use" and isinstance(block.get("id"), str):
            query = search_query(block)
            if query is not None:
                given = block.get("input")
                self.search_blocks[index] = (
                    block["id"],
                    [orjson.dumps(given).decode()] if given else [],
                )
        elif kind == "web_search_tool_result":
            query = self.queries.pop(str(block.get("tool_use_id")), None)
            if query is not None:
                call = search_call(str(block["tool_use_id"]), query, search_status(block))
                self.searches_sent += 1
                return [
                    self._chunk({"web_search_calls": [{"index": self.searches_sent - 1, **call}]})
                ]
        return []

    def _content(self, text: str) -> dict[str, Any]:
        self.offset += len(text)
        return self._chunk({"content": text})

    def _delta(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        index = data.get("index")
        delta = data.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            if self.json_tool:
                return []  # JSON mode: the content is the JSON tool's input alone
            return [self._content(str(delta.get("text", "")))]
        if kind == "citations_delta" and isinstance(index, int) and index in self.cited:
            self.cited[index][1].append(delta.get("citation"))
            return []
        if kind == "input_json_delta":
            partial = delta.get("partial_json", "")
            if isinstance(index, int) and index in self.search_blocks:
                self.search_blocks[index][1].append(str(partial))
                return []
            tool_index = self.tool_of_block.get(index) if isinstance(index, int) else None
            if not partial or tool_index is None:
                return []
            if tool_index == _JSON_BLOCK:
                return [self._chunk({"content": partial})]
            return [
                self._chunk(
                    {"tool_calls": [{"index": tool_index, "function": {"arguments": partial}}]}
                )
            ]
        if kind == "thinking_delta":
            text = str(delta.get("thinking", ""))
            if isinstance(index, int):
                self.thinking.setdefault(index, []).append(text)
            return [self._chunk({"reasoning_content": text})]
        if kind == "signature_delta" and isinstance(index, int):
            self.signatures[index] = str(delta.get("signature", ""))
        return []

    def _block_stop(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        index = data.get("index")
        if not isinstance(index, int):
            return []
        if index in self.cited:
            start, citations = self.cited.pop(index)
            found = url_citations({"citations": citations}, start, self.offset)
            if not found:
                return []
            first, self.annotations_sent = self.annotations_sent, self.annotations_sent + len(found)
            numbered = [{"index": first + n, **each} for n, each in enumerate(found)]
            return [self._chunk({"annotations": numbered})]
        if index in self.search_blocks:
            call_id, parts = self.search_blocks.pop(index)
            try:
                tool_input = orjson.loads("".join(parts) or "{}")
            except orjson.JSONDecodeError:
                tool_input = {}
            self.queries[call_id] = search_query({"name": "web_search", "input": tool_input}) or ""
            return []
        if index not in self.thinking:
            return []
        # The whole thinking block with its signature, for the client to send back later.
        block = {
            "type": "thinking",
            "thinking": "".join(self.thinking.pop(index)),
            "signature": self.signatures.pop(index, ""),
        }
        return [self._chunk({"thinking_blocks": [block]})]

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        self.count_delta(delta)
        return {
            "id": self.response_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.card.title,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def final_usage(self, messages: Any) -> Usage:
        if self.usage is not None or not self.start_usage:
            return super().final_usage(messages)
        # The client left before message_delta: the input is known exactly, the output is not.
        known = usage_of(self.start_usage)
        return replace(
            known,
            output=max(
                token_count(self.start_usage.get("output_tokens")),
                estimate_tokens(self.delta_chars, self.delta_count),
            ),
            reasoning=0,
            estimated=True,
        )


class AnthropicEvents:
    """Reads a passed-through Anthropic stream (/v1/messages to an Anthropic card) for its usage,
    completion and errors; the events themselves reach the client as Anthropic sent them."""

    def __init__(self, card: Card) -> None:
        self.card = card
        self.start_usage: dict[str, Any] = {}
        self.usage: Usage | None = None
        self.done = False
        self.delta_chars = 0
        self.delta_count = 0
        self.response_id = ""  # the message's `id`, from message_start

    def message_start(self, data: dict[str, Any]) -> None:
        message = data.get("message")
        usage = message.get("usage") if isinstance(message, dict) else None
        self.start_usage = usage if isinstance(usage, dict) else {}
        if isinstance(message, dict) and isinstance(message.get("id"), str):
            self.response_id = message["id"]

    def message_delta(self, data: dict[str, Any]) -> dict[str, Any]:
        """The event's usage made whole (cumulative); the caller adds the cost."""
        merged = merged_usage(self.start_usage, data.get("usage"))
        self.usage = usage_of(merged)
        return merged

    def count(self, data: bytes) -> None:
        # For an estimate if the client leaves before the usage arrives: the delta's size.
        self.delta_chars += max(0, len(data) - 60)
        self.delta_count += 1

    def final_usage(self, messages: Any) -> Usage:
        if self.usage is not None:
            return self.usage
        if not self.start_usage:
            return Usage(
                uncached_input=estimate_tokens(prompt_chars(messages)),
                output=estimate_tokens(self.delta_chars, self.delta_count),
                estimated=True,
            )
        known = usage_of(self.start_usage)
        return replace(
            known,
            output=estimate_tokens(self.delta_chars, self.delta_count),
            reasoning=0,
            estimated=True,
        )
