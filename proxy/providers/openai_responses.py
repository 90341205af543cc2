"""OpenAI's Responses API (POST /v1/responses), passed through to OpenAI cards.

The client's body goes on with the card's upstream id as its `model`; the answer comes back
with the catalog title as its `model` and its `usage` in the buckets (billing.usage) plus
`cost`. Streams are relayed event by event as they came, but for the events that carry the
whole response (response.created, response.in_progress, the final one), whose `model` is the
title; the final event (response.completed or response.incomplete) is held back until the
call is settled and then sent with its usage priced (`ResponsesEvents.closing`). An `error`
or `response.failed` event is not relayed: a stream that fails after it began ends as a
translated one does, with the gateway's own `error` event (what happened in our words, never
the upstream's) and then `response.failed`, its terminal event: the response as it opened,
with the output items done so far.
"""

import time
import uuid
from dataclasses import replace
from decimal import Decimal
from typing import Any

import orjson

from billing.pricing import cost_text
from billing.usage import Usage, estimate_tokens
from proxy.gateway.errors import UpstreamError
from proxy.gateway.routing import Card, Upstream
from proxy.gateway.sse import Event, named_frame
from proxy.providers.base import json_headers, upstream_url
from proxy.providers.openai import OpenAIAdapter, parse_json_object
from proxy.upstream.request import UpstreamRequest
from proxy.upstream.wording import stream_failure

RESPONSES_PATH = "/responses"  # under the credential's base URL, which includes /v1
# Output items of the hosted tools OpenAI bills per call, by the catalog's name for the price.
HOSTED_CALLS = {
    "web_search_call": "web_search",
    "file_search_call": "file_search",
    "code_interpreter_call": "code_interpreter",
    "image_generation_call": "image_generation",
    "mcp_call": "mcp",
    "tool_search_call": "tool_search",
}
# The events that carry the whole response object (its `model`, and at the end its usage).
OPENING_EVENTS = frozenset({"response.created", "response.in_progress", "response.queued"})
FINAL_EVENTS = frozenset({"response.completed", "response.incomplete"})
# The deltas whose characters estimate the output when the upstream never says its usage.
DELTA_EVENTS = frozenset(
    {
        "response.output_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
        "response.custom_tool_call_input.delta",
        "response.reasoning_text.delta",
        "response.reasoning_summary_text.delta",
    }
)


def responses_request(
    adapter: OpenAIAdapter, body: dict[str, Any], card: Card, upstream: Upstream, *, stream: bool
) -> UpstreamRequest:
    return UpstreamRequest(
        "POST",
        upstream_url(upstream.base_url, RESPONSES_PATH),
        json_headers(adapter.auth_header(upstream), stream=stream),
        orjson.dumps({**body, "model": card.upstream_id}),
    )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_from_responses(raw: Any) -> Usage | None:
    """The Responses API's usage: input_tokens includes the cached and cache-written tokens,
    output_tokens the reasoning tokens (as chat's prompt and completion tokens do)."""
    if not isinstance(raw, dict):
        return None
    given = _count(raw.get("input_tokens"))
    produced = _count(raw.get("output_tokens"))
    input_details = raw.get("input_tokens_details")
    input_details = input_details if isinstance(input_details, dict) else {}
    output_details = raw.get("output_tokens_details")
    output_details = output_details if isinstance(output_details, dict) else {}
    cached = min(_count(input_details.get("cached_tokens")), given)
    written = min(_count(input_details.get("cache_write_tokens")), given - cached)
    reasoning = min(_count(output_details.get("reasoning_tokens")), produced)
    return Usage(
        uncached_input=given - cached - written,
        cache_read=cached,
        cache_write=written,
        output=produced - reasoning,
        reasoning=reasoning,
    )


def priced_usage(response: dict[str, Any]) -> Usage | None:
    """A response object's usage, with the tier OpenAI says it served and its hosted tools'
    calls (counted from its output items: the usage does not count them)."""
    usage = usage_from_responses(response.get("usage"))
    if usage is None:
        return None
    calls: dict[str, int] = {}
    for item in response.get("output") or ():
        kind = item.get("type") if isinstance(item, dict) else None
        name = HOSTED_CALLS.get(kind) if isinstance(kind, str) else None
        if name is not None:
            calls[name] = calls.get(name, 0) + 1
    tier = response.get("service_tier")
    return replace(usage, service_tier=tier if isinstance(tier, str) else None, server_tools=calls)


def responses_usage(original: Any, usage: Usage, cost: Decimal) -> dict[str, Any]:
    """The client-facing usage: the upstream's extras kept, our counts and `cost` on top."""
    result: dict[str, Any] = dict(original) if isinstance(original, dict) else {}
    given, produced = usage.prompt_tokens, usage.completion_tokens
    input_details = result.get("input_tokens_details")
    output_details = result.get("output_tokens_details")
    result.update(
        input_tokens=given,
        input_tokens_details={
            **(input_details if isinstance(input_details, dict) else {}),
            "cached_tokens": usage.cache_read,
            "cache_write_tokens": usage.cache_write + usage.cache_write_1h,
        },
        output_tokens=produced,
        output_tokens_details={
            **(output_details if isinstance(output_details, dict) else {}),
            "reasoning_tokens": usage.reasoning,
        },
        total_tokens=given + produced,
        cost=orjson.Fragment(cost_text(cost).encode()),
    )
    return result


def responses_response(payload: bytes, card: Card) -> tuple[dict[str, Any], Usage]:
    data = parse_json_object(payload, card.provider)
    usage = priced_usage(data)
    if usage is None:
        raise UpstreamError(f"{card.provider} sent no usage; the request cannot be priced.")
    data["model"] = card.title
    return data, usage


def input_chars(body: dict[str, Any]) -> int:
    """The characters of the request's instructions and input text (for an estimate only)."""
    total = len(body["instructions"]) if isinstance(body.get("instructions"), str) else 0
    given = body.get("input")
    if isinstance(given, str):
        return total + len(given)
    for item in given if isinstance(given, list) else ():
        if not isinstance(item, dict):
            continue
        content = item.get("content")
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    total += len(part["text"])
        for key in ("arguments", "output"):
            if isinstance(item.get(key), str):
                total += len(item[key])
    return total


class ResponsesEvents:
    """Follows one upstream Responses stream: relays its events, holds back the final one."""

    __slots__ = (
        "body",
        "card",
        "delta_chars",
        "delta_count",
        "done",
        "final",
        "items",
        "opening",
        "response_id",
        "sequence",
        "usage",
    )

    def __init__(self, card: Card, body: dict[str, Any]) -> None:
        self.card = card
        self.body = body
        self.usage: Usage | None = None
        self.done = False
        self.response_id = ""
        self.sequence = -1  # the last sequence_number relayed
        self.final: tuple[str, dict[str, Any]] | None = None
        # For a failure's response.failed: the response as it opened, the items done by index.
        self.opening: dict[str, Any] | None = None
        self.items: dict[int, dict[str, Any]] = {}
        self.delta_chars = self.delta_count = 0

    def feed(self, event: Event) -> bytes:
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return b""  # not an event of the API (a keep-alive, say)
        if not isinstance(data, dict):
            return b""
        name = event.name
        if name == "message":  # an upstream that named no events: the type names it
            kind = data.get("type")
            name = kind if isinstance(kind, str) else name
        if name == "error":
            raise stream_failure(self.card.provider, {**data, "type": data.get("code")})
        if name == "response.failed":
            self._measure(data)
            self.done = True
            response = data.get("response")
            error = response.get("error") if isinstance(response, dict) else None
            code = error.get("code") if isinstance(error, dict) else None
            raise stream_failure(self.card.provider, {"type": code, "detail": error})
        sequence = data.get("sequence_number")  # of the events relayed (the error takes the next)
        if isinstance(sequence, int):
            self.sequence = max(self.sequence, sequence)
        if name in DELTA_EVENTS:
            delta = data.get("delta")
            if isinstance(delta, str) and delta:
                self.delta_chars += len(delta)
                self.delta_count += 1
            return named_frame(name, event.data)
        if name in OPENING_EVENTS:
            response = data.get("response")
            if isinstance(response, dict):
                response["model"] = self.card.title
                self.opening = response
                if not self.response_id and isinstance(response.get("id"), str):
                    self.response_id = response["id"]
            return named_frame(name, orjson.dumps(data))
        if name == "response.output_item.done":
            item, index = data.get("item"), data.get("output_index")
            if isinstance(item, dict) and isinstance(index, int):
                self.items[index] = item
        if name in FINAL_EVENTS:
            self._measure(data)
            self.final, self.done = (name, data), True
            return b""  # sent once the call is settled: closing()
        return named_frame(name, event.data)

    def _measure(self, data: dict[str, Any]) -> None:
        response = data.get("response")
        if isinstance(response, dict):
            usage = priced_usage(response)
            if usage is not None:
                self.usage = usage

    def final_usage(self) -> Usage:
        """The upstream's usage; or, when it never said (the client left early), an estimate
        from the input's and the deltas' characters, marked as such."""
        if self.usage is not None:
            return self.usage
        return Usage(
            uncached_input=estimate_tokens(input_chars(self.body)),
            output=estimate_tokens(self.delta_chars, self.delta_count),
            estimated=True,
        )

    def closing(self, usage: Usage, cost: Decimal) -> bytes:
        """The final event, its response showing the title and its usage priced."""
        if self.final is None:
            return b""
        name, data = self.final
        response = data.get("response")
        if isinstance(response, dict):
            response["model"] = self.card.title
            response["usage"] = responses_usage(response.get("usage"), usage, cost)
        return named_frame(name, orjson.dumps(data))

    def failure_frames(self, code: str | None, message: str, param: str | None) -> bytes:
        """The gateway's own `error` event, then `response.failed` (the response as it opened,
        or a bare one when none did, with the items done so far), numbered after the last
        event relayed."""
        error = {"type": "error", "code": code, "message": message, "param": param}
        self.sequence += 1
        frames = [named_frame("error", orjson.dumps({**error, "sequence_number": self.sequence}))]
        response = dict(self.opening) if self.opening is not None else self._bare_response()
        response.update(
            status="failed",
            error={"code": code or "server_error", "message": message},
            output=[self.items[index] for index in sorted(self.items)],
            usage=None,
        )
        self.sequence += 1
        failed = {"type": "response.failed", "response": response, "sequence_number": self.sequence}
        frames.append(named_frame("response.failed", orjson.dumps(failed)))
        return b"".join(frames)

    def _bare_response(self) -> dict[str, Any]:
        """A response object for a stream that failed before the upstream opened one."""
        return {
            "id": self.response_id or f"resp_{uuid.uuid4().hex}",
            "object": "response",
            "created_at": int(time.time()),
            "model": self.card.title,
        }
