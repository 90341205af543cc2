"""POST /v1/messages and /v1/messages/count_tokens: Anthropic's Messages API, for any card.

To an Anthropic card the client's body goes on as it is (thinking blocks and their signatures
untouched), but for the fields the Claude model behind it would refuse
(providers/anthropic/claude_models.py); the answer comes back with the catalog title and
`usage.cost` added. To any other card the request is translated into the OpenAI-shaped core
(dialects/anthropic_messages/translate.py), sent through that card's adapter, and its answer
translated back (dialects/anthropic_messages/stream.py for streams). Either way the
failover, usage buckets, pricing and usage event are the shared pipeline's.
"""

from decimal import Decimal
from typing import Any

import orjson
from django.conf import settings

from billing.pricing import cost_text, usage_cost
from billing.usage import Usage
from proxy.gateway.dialects.anthropic_messages.api import message_from_completion, validate_messages
from proxy.gateway.dialects.anthropic_messages.betas import ga_betas, ga_body
from proxy.gateway.dialects.anthropic_messages.stream import AnthropicEventWriter
from proxy.gateway.dialects.anthropic_messages.translate import chat_body
from proxy.gateway.errors import GatewayError, InvalidRequest, UpstreamError
from proxy.gateway.http import Request, Response
from proxy.gateway.pipeline.call import Pipeline
from proxy.gateway.pipeline.calls import ZERO_USAGE
from proxy.gateway.pipeline.ceiling import MINIMAL_ANSWER_TOKENS, OutputLimit
from proxy.gateway.pipeline.relay import StreamOutput, relay_stream
from proxy.gateway.pipeline.server_tools import messages_server_tools
from proxy.gateway.pipeline.translated import TranslatedStream
from proxy.gateway.sse import Event, named_frame
from proxy.providers import adapter_for
from proxy.providers.anthropic.adapter import COUNT_TOKENS_PATH, AnthropicAdapter
from proxy.providers.anthropic.stream import AnthropicEvents, stream_error
from proxy.providers.openai import parse_json_object
from proxy.upstream.request import UpstreamRequest


async def messages(request: Request, pipeline: Pipeline) -> Response | None:
    policy = await pipeline.authenticate(request, allow_x_api_key=True)
    with pipeline.record(request, policy, "messages") as record:
        body = ga_body(await request.json(settings.TOKENBYTE_MAX_BODY_BYTES))
        call = validate_messages(body)
        card = await pipeline.admit(record, call.model, card_type="chat", stream=call.stream)
        long_context = b"context-1m" in (request.header(b"anthropic-beta") or b"")
        adapter = adapter_for(card.provider)
        # Server tools run on Anthropic's cards only (the translation refuses them).
        native = isinstance(adapter, AnthropicAdapter)
        await pipeline.reserve(
            record,
            request.raw,
            messages_output_limit(body),
            long_context=long_context,
            tools=messages_server_tools(body, card) if native else (),
        )
        output: StreamOutput
        if isinstance(adapter, AnthropicAdapter):
            beta = ga_betas(request.header(b"anthropic-beta"))

            def build_native(upstream: Any) -> UpstreamRequest:
                return adapter.messages_request(body, card, upstream, stream=call.stream, beta=beta)

            opened = await pipeline.open_upstream(record, adapter, build_native, stream=call.stream)
            if not call.stream:
                parse = lambda payload: adapter.messages_response(payload, card)  # noqa: E731
                return await pipeline.complete(record, opened, parse, _with_cost)
            output = NativeOutput(AnthropicEvents(card), body)
        else:
            translated = chat_body(body, card, stream=call.stream)

            def build(upstream: Any) -> UpstreamRequest:
                return adapter.chat_request(translated, card, upstream, stream=call.stream)

            opened = await pipeline.open_upstream(record, adapter, build, stream=call.stream)
            if not call.stream:
                return await pipeline.complete(
                    record,
                    opened,
                    lambda payload: adapter.chat_response(payload, card, translated),
                    lambda data, usage, cost: message_from_completion(data, usage, cost, card),
                )
            writer = AnthropicEventWriter(card)
            output = TranslatedStream(adapter.chat_stream(card, translated), translated, writer)
        await relay_stream(request, record, opened, output)
        return None


# Anthropic's smallest thinking budget; max_tokens must exceed the budget.
MIN_THINKING_BUDGET = 1024


def messages_output_limit(body: dict[str, Any]) -> OutputLimit:
    """Anthropic's max_tokens (required, validated); a thinking budget inside it shrinks with
    it, down to Anthropic's minimum."""
    thinking = body.get("thinking")
    budgeted = isinstance(thinking, dict) and isinstance(thinking.get("budget_tokens"), int)

    def lower(tokens: int) -> None:
        body["max_tokens"] = tokens
        if isinstance(thinking, dict) and budgeted and thinking["budget_tokens"] >= tokens:
            thinking["budget_tokens"] = tokens - 1

    minimum = MIN_THINKING_BUDGET + 1 if budgeted else MINIMAL_ANSWER_TOKENS
    return OutputLimit(body.get("max_tokens"), 1, lower, minimum)


async def count_tokens(request: Request, pipeline: Pipeline) -> Response:
    policy = await pipeline.authenticate(request, allow_x_api_key=True)
    with pipeline.record(request, policy, "messages.count_tokens") as record:
        body = ga_body(await request.json(settings.TOKENBYTE_MAX_BODY_BYTES))
        call = validate_messages(body, count_only=True)
        # Counting is free and does not spend the key's rate limits.
        card = await pipeline.admit(
            record, call.model, card_type="chat", stream=False, rate_limited=False
        )
        adapter = adapter_for(card.provider)
        if not isinstance(adapter, AnthropicAdapter):
            raise InvalidRequest(
                f"model: token counting is available for Anthropic models; {card.title} is a "
                f"{card.provider} model.",
                param="model",
                code="unsupported_model",
            )
        beta = ga_betas(request.header(b"anthropic-beta"))

        def build(upstream: Any) -> UpstreamRequest:
            return adapter.messages_request(
                body, card, upstream, stream=False, beta=beta, path=COUNT_TOKENS_PATH
            )

        opened = await pipeline.open_upstream(record, adapter, build, stream=False)
        parse = lambda payload: (parse_json_object(payload, card.provider), ZERO_USAGE)  # noqa: E731
        return await pipeline.complete(record, opened, parse, lambda data, _usage, _cost: data)


def _with_cost(data: dict[str, Any], usage: Usage, cost: Decimal) -> dict[str, Any]:
    data["usage"] = {**data["usage"], "cost": orjson.Fragment(cost_text(cost).encode())}
    return data


class NativeOutput(StreamOutput):
    """Anthropic's own events, relayed as they came; message_start gets the catalog title and
    message_delta the cost, priced from the same buckets as every other answer."""

    __slots__ = ("body", "events", "pending")

    def __init__(self, events: AnthropicEvents, body: dict[str, Any]) -> None:
        self.events = events
        self.body = body
        self.pending = b""  # the events relayed with a failing one, in the same read

    @property
    def done(self) -> bool:
        return self.events.done

    def frames(self, events: list[Event]) -> bytes:
        out: list[bytes] = []
        tracker = self.events
        for event in events:
            name = event.name
            if name == "content_block_delta":
                tracker.count(event.data)
            elif name in ("message_start", "message_delta", "error"):
                try:
                    rewritten = self._rewrite(name, event.data)
                except GatewayError:
                    self.pending = b"".join(out)
                    raise
                out.append(named_frame(name, orjson.dumps(rewritten)))
                continue
            elif name == "message_stop":
                tracker.done = True
            out.append(named_frame(name, event.data))
        return b"".join(out)

    def _rewrite(self, name: str, raw: bytes) -> dict[str, Any]:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(f"anthropic sent a {name} event that is not JSON.") from exc
        card = self.events.card
        if not isinstance(data, dict):
            raise UpstreamError(f"anthropic sent a {name} event that is not an object.")
        if name == "error":
            raise stream_error(data, card.provider)
        if name == "message_start":
            if isinstance(data.get("message"), dict):
                data["message"]["model"] = card.title
            self.events.message_start(data)
        else:
            self.events.message_delta(data)
            usage = self.events.usage or ZERO_USAGE
            cost = usage_cost(usage, card.prices)  # the one pricing function, as the event's
            data["usage"] = {
                **(data.get("usage") or {}),
                "cost": orjson.Fragment(cost_text(cost).encode()),
            }
        return data

    def final_usage(self) -> Usage:
        return self.events.final_usage(self.body.get("messages"))

    def response_id(self) -> str:
        return self.events.response_id

    def closing(self, usage: Usage, cost: Decimal) -> bytes:
        return b""  # message_stop has been relayed already

    def failure(self, error: GatewayError) -> bytes:
        return self.pending + named_frame("error", error.anthropic_body())
