"""A strict fake of Anthropic's Messages and Models APIs (POST /v1/messages,
/v1/messages/count_tokens, GET /v1/models).

A body must fit the anthropic SDK's request types (anthropic_schema.py): the beta ones when the
request carries an `anthropic-beta` header (system-role messages with clear_at and
output_config, tool addition/removal blocks, context_management, …), the GA ones otherwise,
plus the sampling parameters the API still takes (temperature, top_p, top_k); anything else is
refused as Anthropic refuses it: HTTP 400, {"type": "error", "error": {"type":
"invalid_request_error", "message": "<field>: Extra inputs are not permitted"}}. Headers
x-api-key and anthropic-version are required. Thinking signatures
are checked: a thinking block sent back must carry the signature this fake issued for it.
Answers are deterministic (one token per word) so tests can compute exact costs.
"""

from typing import Any, ClassVar

import orjson

from tests.fakes.anthropic_rules import (
    THINKING_TEXT,
    AnthropicError,
    AnthropicRequestRules,
    signature_for,
    text_of,
    words,
)
from tests.fakes.anthropic_schema import count_schema, create_schema
from tests.fakes.anthropic_search import SEARCH_PREAMBLE, citations, search_blocks
from tests.fakes.server import FakeAPI, Scripted

LONG_CONTEXT = 200_000  # input tokens a request may have without the 1M-context beta
# GET /v1/models: newest first, one page (the API pages by 20 with first_id / last_id).
MODEL_LIST = {
    "data": [
        {
            "type": "model",
            "id": "claude-sonnet-4-5-20250929",
            "display_name": "Claude Sonnet 4.5",
            "created_at": "2025-09-29T00:00:00Z",
        },
        {
            "type": "model",
            "id": "claude-3-5-haiku-20241022",
            "display_name": "Claude Haiku 3.5",
            "created_at": "2024-10-22T00:00:00Z",
        },
    ],
    "has_more": False,
    "first_id": "claude-sonnet-4-5-20250929",
    "last_id": "claude-3-5-haiku-20241022",
}


class FakeAnthropic(AnthropicRequestRules, FakeAPI):
    # What api.anthropic.com sends with every answer: the account's organisation, its limits.
    response_headers: ClassVar[dict[str, str]] = {
        "anthropic-organization-id": "5f0c7a8e-61d4-4b2e-9a1f-3c2d4e5f6a7b",
        "anthropic-ratelimit-requests-limit": "4000",
        "anthropic-ratelimit-requests-remaining": "3999",
        "server": "cloudflare",
        "cf-ray": "8f1e2d3c4b5a6979-FRA",
    }

    def __init__(self, api_key: str = "sk-ant-fake") -> None:
        super().__init__()
        self.api_key = api_key
        self.cache_read = 0  # reported as cache_read_input_tokens (taken from the prompt)
        self.cache_write = 0  # reported as cache_creation_input_tokens, 5-minute TTL
        self.cache_write_1h = 0  # likewise, 1-hour TTL (cache_creation.ephemeral_1h_input_tokens)
        self.extra_prompt_tokens = 0  # added to every prompt's count (a long-context request)
        self.service_tier = "standard"  # usage.service_tier: the tier the answer was served at
        self.searches = 2  # web searches run per request offering the web search tool
        # With the web search tool offered: answer with the searches' blocks and a cited text
        # (server_tool_use, web_search_tool_result, text with citations), as the API does.
        self.search_results = False
        self.search_error: str | None = None  # each search fails with this error_code
        self.reply = "Hello from the fake Claude, happy to help."
        # A sentence Claude writes before its tool calls ("Let me check."), when set.
        self.tool_preamble: str | None = None
        self.calls_tools = True  # with tools offered, call the first (or the one forced)
        self.stream_error_after: int | None = None  # send an error event after N events
        self.last_stream: list[bytes] = []  # the frames of the last stream, as sent
        self.last_content: list[dict[str, Any]] = []  # the content blocks of the last answer

    # --- answering ----------------------------------------------------------------------
    async def handle(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: Any,
        send: Any,
        scripted: Scripted | None,
    ) -> None:
        try:
            self.check_headers(headers, has_body=method != "GET")
            beta = bool(headers.get("anthropic-beta"))
            if method == "GET" and path == "/v1/models":
                await self.send_json(send, 200, MODEL_LIST, self.id_header())
            elif method == "POST" and path == "/v1/messages":
                self.check_request(body, create_schema(beta=beta), count_only=False)
                self.check_context(body, headers.get("anthropic-beta", ""))
                await self.create(body, send, scripted)
            elif method == "POST" and path == "/v1/messages/count_tokens":
                self.check_request(body, count_schema(beta=beta), count_only=True)
                total = self.prompt_tokens(body)
                await self.send_json(send, 200, {"input_tokens": total}, self.id_header())
            else:
                raise AnthropicError(f"Not Found: {method} {path}", 404, "not_found_error")
        except AnthropicError as error:
            await self.send_json(send, error.status, error.body(), self.id_header())

    def check_context(self, body: dict[str, Any], beta: str) -> None:
        # Above 200k input tokens only with the 1M-context beta, as Anthropic answers it.
        total = self.prompt_tokens(body) + self.extra_prompt_tokens
        if total > LONG_CONTEXT and "context-1m-2025-08-07" not in beta:
            raise AnthropicError(
                f"prompt is too long: {total} tokens > {LONG_CONTEXT} maximum",
                400,
                "invalid_request_error",
            )

    def server_tool_use(self, body: dict[str, Any]) -> dict[str, int] | None:
        """usage.server_tool_use: the searches and fetches the API ran (max_uses caps them)."""
        counts: dict[str, int] = {}
        for tool in body.get("tools") or ():
            kind = str(tool.get("type", ""))
            for prefix, key in (
                ("web_search_", "web_search_requests"),
                ("web_fetch_", "web_fetch_requests"),
            ):
                if kind.startswith(prefix):
                    counts[key] = min(self.searches, tool.get("max_uses") or self.searches)
        if not counts:
            return None
        return {"web_search_requests": 0, "web_fetch_requests": 0, **counts}

    @staticmethod
    def id_header() -> dict[str, str]:
        return {"request-id": "req_fake_0001"}

    @staticmethod
    def prompt_tokens(body: dict[str, Any]) -> int:
        system = body.get("system")
        total = words(system if isinstance(system, str) else text_of(system or []))
        for message in body["messages"]:
            content = message.get("content") or []
            total += words(text_of(content)) + 3
            for block in content if isinstance(content, list) else ():
                total += 10 if block["type"] in ("image", "document") else 0
        return total

    def plan(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str, str | None]:
        """(content blocks, stop reason, stop sequence) of the answer."""
        blocks: list[dict[str, Any]] = []
        if (body.get("thinking") or {}).get("type") in ("enabled", "adaptive"):
            blocks.append(
                {
                    "type": "thinking",
                    "thinking": THINKING_TEXT,
                    "signature": signature_for(THINKING_TEXT),
                }
            )
        last = body["messages"][-1]
        content = last.get("content") if isinstance(last.get("content"), list) else []
        answering_tool = any(block["type"] == "tool_result" for block in content)
        # Client tools have no type, or "custom"; the typed ones are Anthropic's server tools.
        tools = [tool for tool in body.get("tools") or () if tool.get("type") in (None, "custom")]
        choice = body.get("tool_choice") or {"type": "auto"}
        searches = (self.server_tool_use(body) or {}).get("web_search_requests", 0)
        searching = self.search_results and searches and not answering_tool
        if tools and choice["type"] != "none" and not answering_tool and self.calls_tools:
            name = choice.get("name") or tools[0]["name"]
            if searching:  # Claude may search, then call a tool, in one answer
                blocks += search_blocks(searches, self.search_error)
            if self.tool_preamble:
                blocks.append({"type": "text", "text": self.tool_preamble})
            tool_input = (
                {"answer": "hello", "ok": True} if name == "json_response" else {"city": "Paris"}
            )
            blocks.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_fake{len(body['messages']):04d}",
                    "name": name,
                    "input": tool_input,
                }
            )
            return blocks, "tool_use", None
        if answering_tool:
            text = "The tool said: " + text_of(content)
        elif (body.get("output_config") or {}).get("format"):
            text = '{"answer": "hello", "ok": true}'
        else:
            text = self.reply
        reason, sequence = "end_turn", None
        for stop in body.get("stop_sequences") or ():
            if stop in text:
                text, reason, sequence = text[: text.index(stop)], "stop_sequence", stop
                break
        budget = body["max_tokens"] - sum(words(b.get("thinking", "")) for b in blocks)
        if words(text) > budget:
            text, reason, sequence = " ".join(text.split()[: max(budget, 0)]), "max_tokens", None
        if searching:
            blocks += search_blocks(searches, self.search_error)
            blocks.append({"type": "text", "text": SEARCH_PREAMBLE})
            if text and self.search_error:
                blocks.append({"type": "text", "text": text})
            elif text:
                blocks.append({"type": "text", "text": text, "citations": citations(searches)})
        elif text:
            blocks.append({"type": "text", "text": text})
        return blocks, reason, sequence

    def usage(self, body: dict[str, Any], blocks: list[dict[str, Any]]) -> dict[str, Any]:
        prompt = self.prompt_tokens(body) + self.extra_prompt_tokens
        cache_read = min(self.cache_read, prompt)
        cache_write = min(self.cache_write, prompt - cache_read)
        cache_write_1h = min(self.cache_write_1h, prompt - cache_read - cache_write)
        thinking = sum(words(b.get("thinking", "")) for b in blocks)
        output = thinking + sum(
            words(b.get("text", ""))
            + (words(orjson.dumps(b["input"]).decode()) if b["type"] == "tool_use" else 0)
            for b in blocks
        )
        usage: dict[str, Any] = {
            "input_tokens": prompt - cache_read - cache_write - cache_write_1h,
            "cache_creation_input_tokens": cache_write + cache_write_1h,
            "cache_read_input_tokens": cache_read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": cache_write,
                "ephemeral_1h_input_tokens": cache_write_1h,
            },
            "output_tokens": output,
            "server_tool_use": self.server_tool_use(body),
            "service_tier": self.service_tier,
        }
        if thinking:
            usage["output_tokens_details"] = {"thinking_tokens": thinking}
        return usage

    async def create(self, body: dict[str, Any], send: Any, scripted: Scripted | None) -> None:
        blocks, reason, sequence = self.plan(body)
        self.last_content = blocks
        usage = self.usage(body, blocks)
        message = {
            "id": "msg_fake0001",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": blocks,
            "stop_reason": reason,
            "stop_sequence": sequence,
            "usage": usage,
        }
        if not body.get("stream"):
            await self.send_json(send, 200, message, self.id_header())
            return
        events = self.stream_events(message)
        if self.stream_error_after is not None:
            overloaded = {"type": "overloaded_error", "message": "Overloaded"}
            events = [
                *events[: self.stream_error_after],
                event("error", {"type": "error", "error": overloaded}),
            ]
        self.last_stream = events
        await self.send_events(send, events, scripted)

    @staticmethod
    def stream_events(message: dict[str, Any]) -> list[bytes]:
        usage = message["usage"]
        start_usage = {**usage, "output_tokens": 1}
        start_usage.pop("output_tokens_details", None)
        head = {
            **message,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": start_usage,
        }
        events = [
            event("message_start", {"type": "message_start", "message": head}),
            event("ping", {"type": "ping"}),
        ]
        for index, block in enumerate(message["content"]):
            kind = block["type"]
            opening = {
                "text": {
                    "type": "text",
                    "text": "",
                    **({"citations": []} if "citations" in block else {}),
                },
                "thinking": {"type": "thinking", "thinking": "", "signature": ""},
                "tool_use": {**block, "input": {}},
                "server_tool_use": {**block, "input": {}},
                "web_search_tool_result": block,  # whole, in its start: it has no deltas
            }[kind]
            events.append(
                event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": opening},
                )
            )
            deltas: list[dict[str, Any]] = []
            if kind == "text":
                deltas = [{"type": "text_delta", "text": piece} for piece in _pieces(block["text"])]
                deltas += [
                    {"type": "citations_delta", "citation": citation}
                    for citation in block.get("citations") or ()
                ]
            elif kind == "web_search_tool_result":
                pass
            elif kind == "thinking":
                deltas = [
                    {"type": "thinking_delta", "thinking": piece}
                    for piece in _pieces(block["thinking"])
                ]
                deltas.append({"type": "signature_delta", "signature": block["signature"]})
            else:
                raw = orjson.dumps(block["input"]).decode()
                deltas = [{"type": "input_json_delta", "partial_json": ""}] + [
                    {"type": "input_json_delta", "partial_json": raw[i : i + 5]}
                    for i in range(0, len(raw), 5)
                ]
            events += [
                event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
                for delta in deltas
            ]
            events.append(
                event("content_block_stop", {"type": "content_block_stop", "index": index})
            )
        final_usage = {
            key: usage[key]
            for key in (
                "input_tokens",
                "cache_creation_input_tokens",
                "cache_read_input_tokens",
                "output_tokens",
            )
        }
        if "output_tokens_details" in usage:
            final_usage["output_tokens_details"] = usage["output_tokens_details"]
        if usage.get("server_tool_use"):  # cumulative, like the token counts
            final_usage["server_tool_use"] = usage["server_tool_use"]
        events.append(
            event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": message["stop_reason"],
                        "stop_sequence": message["stop_sequence"],
                    },
                    "usage": final_usage,
                },
            )
        )
        events.append(event("message_stop", {"type": "message_stop"}))
        return events


def _pieces(text: str) -> list[str]:
    parts = text.split(" ")
    return [part if i == 0 else " " + part for i, part in enumerate(parts)]


def event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
