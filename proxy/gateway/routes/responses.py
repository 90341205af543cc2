"""POST /v1/responses: OpenAI's Responses API, passed through to OpenAI cards.

The body goes to the upstream's /v1/responses as the client sent it, but for its `model` (the
card's upstream id), an output limit lowered to fit the ceiling (`max_output_tokens`) and a
hosted tools' limit (`max_tool_calls`, pipeline/responses_tools.py). The answer, or each event
of its stream, comes back as it came, with the catalog title as its `model` and its `usage`
priced (providers/openai_responses.py). `store`, `previous_response_id` and `include` are
OpenAI's: the gateway keeps no responses. Other providers' cards are refused for now.
"""

from decimal import Decimal
from typing import Any

import orjson
from django.conf import settings

from billing.usage import Usage
from proxy.gateway.auth.authenticate import authenticate
from proxy.gateway.auth.key_cache import KeyResolver
from proxy.gateway.dialects.openai_responses import validate_responses
from proxy.gateway.dialects.responses_output import (
    ResponsesEventWriter,
    ResponseShape,
    response_from_completion,
)
from proxy.gateway.dialects.responses_translate import chat_body
from proxy.gateway.errors import GatewayError, NotFound
from proxy.gateway.http import Request, Response
from proxy.gateway.pipeline.call import Pipeline
from proxy.gateway.pipeline.calls import CallRecord
from proxy.gateway.pipeline.ceiling import OutputLimit
from proxy.gateway.pipeline.relay import StreamOutput, relay_stream
from proxy.gateway.pipeline.responses_tools import responses_server_tools
from proxy.gateway.pipeline.server_tools import chat_server_tools
from proxy.gateway.routing import Card, ProviderKind
from proxy.gateway.sse import Event, named_frame
from proxy.providers import adapter_for
from proxy.providers.base import ProviderAdapter, StreamTranslator
from proxy.providers.openai import OpenAIAdapter
from proxy.providers.openai_responses import (
    ResponsesEvents,
    responses_request,
    responses_response,
    responses_usage,
)
from proxy.providers.priced import check_service_tier
from proxy.upstream.request import UpstreamRequest

RESPONSES_PATH = "/v1/responses"
# GET /v1/responses/{id}, DELETE, /input_items, /cancel: for responses stored by the gateway,
# which stores none.
RESPONSES_PREFIX = "/v1/responses/"


async def responses(request: Request, pipeline: Pipeline) -> Response | None:
    policy = await pipeline.authenticate(request)
    with pipeline.record(request, policy, "responses") as record:
        body = await request.json(settings.TOKENBYTE_MAX_BODY_BYTES)
        call = validate_responses(body, request.raw)
        card = await pipeline.admit(record, call.model, card_type="chat", stream=call.stream)
        adapter = adapter_for(card.provider)
        if card.provider != ProviderKind.OPENAI or not isinstance(adapter, OpenAIAdapter):
            return await _translated(request, pipeline, record, body, card, adapter, call.stream)
        check_service_tier(body, card, forwarded=True)
        tier = body.get("service_tier")
        await pipeline.reserve(
            record,
            request.raw,
            responses_output_limit(body),
            service_tier=tier if isinstance(tier, str) else None,
            tools=responses_server_tools(body, card),
            stored_context=call.stored_context,
        )

        def build(upstream: Any) -> UpstreamRequest:
            return responses_request(adapter, body, card, upstream, stream=call.stream)

        opened = await pipeline.open_upstream(record, adapter, build, stream=call.stream)
        if not call.stream:
            parse = lambda payload: responses_response(payload, card)  # noqa: E731
            return await pipeline.complete(record, opened, parse, _priced_response)
        await relay_stream(request, record, opened, ResponsesOutput(ResponsesEvents(card, body)))
        return None


async def stored_response(request: Request, keys: KeyResolver) -> Response:
    """Every call on a stored response: authenticated, then a 404 that says why, the same for
    every id (the gateway stores no responses, so none is anyone's)."""
    await authenticate(request, keys)
    response_id = request.path[len(RESPONSES_PREFIX) :].split("/", 1)[0]
    raise NotFound(
        f"Response with id {response_id[:128]!r} not found: the gateway stores no responses "
        "and does not fetch OpenAI's (an OpenAI model continues from one by "
        "previous_response_id). Keep the output items and send them back in 'input', as "
        "Codex does.",
        param="response_id",
        code="response_not_found",
    )


def responses_output_limit(body: dict[str, Any]) -> OutputLimit:
    """max_output_tokens (reasoning included, as on every provider), lowered in place."""

    def lower(tokens: int) -> None:
        body["max_output_tokens"] = tokens

    return OutputLimit(body.get("max_output_tokens"), 1, lower)


async def _translated(
    request: Request,
    pipeline: Pipeline,
    record: CallRecord,
    body: dict[str, Any],
    card: Card,
    adapter: ProviderAdapter,
    stream: bool,
) -> Response | None:
    """Another provider's card: through the chat core and its adapter, and back."""
    core, names = chat_body(body, card, stream=stream)

    def lower(tokens: int) -> None:
        body["max_output_tokens"] = core["max_tokens"] = tokens

    await pipeline.reserve(
        record,
        request.raw,
        OutputLimit(body.get("max_output_tokens"), 1, lower),
        tools=chat_server_tools(core, card),
    )
    shape = ResponseShape(body, card, names)

    def build(upstream: Any) -> UpstreamRequest:
        return adapter.chat_request(core, card, upstream, stream=stream)

    opened = await pipeline.open_upstream(record, adapter, build, stream=stream)
    if not stream:
        return await pipeline.complete(
            record,
            opened,
            lambda payload: adapter.chat_response(payload, card, core),
            lambda data, usage, cost: response_from_completion(shape, data, usage, cost),
        )
    output = TranslatedOutput(adapter.chat_stream(card, core), core, shape)
    await relay_stream(request, record, opened, output)
    return None


def _priced_response(data: dict[str, Any], usage: Usage, cost: Decimal) -> dict[str, Any]:
    data["usage"] = responses_usage(data.get("usage"), usage, cost)
    return data


class ResponsesOutput(StreamOutput):
    """OpenAI's Responses events as they came; the final one priced once the call is settled."""

    __slots__ = ("events", "pending")

    def __init__(self, events: ResponsesEvents) -> None:
        self.events = events
        # The events read with a failing one, in the same chunk: they go out before the error.
        self.pending = b""

    @property
    def done(self) -> bool:
        return self.events.done

    def frames(self, events: list[Event]) -> bytes:
        feed = self.events.feed
        out: list[bytes] = []
        try:
            out.extend(feed(event) for event in events)  # keeps what came before a raise
        except GatewayError:
            self.pending = b"".join(out)
            raise
        return b"".join(out)

    def final_usage(self) -> Usage:
        return self.events.final_usage()

    def response_id(self) -> str:
        return self.events.response_id

    def closing(self, usage: Usage, cost: Decimal) -> bytes:
        return self.events.closing(usage, cost)

    def failure(self, error: GatewayError) -> bytes:
        return self.pending + self.events.error_event(error.code, error.message, error.param)


class TranslatedOutput(StreamOutput):
    """Another provider's stream, through its adapter to chat chunks, then to Responses
    events; the final one, priced, once the call is settled."""

    __slots__ = ("body", "pending", "translator", "writer")

    def __init__(
        self, translator: StreamTranslator, body: dict[str, Any], shape: ResponseShape
    ) -> None:
        self.translator = translator
        self.body = body
        self.writer = ResponsesEventWriter(shape)
        # The events made from what came with a failing one, in the same read: they go out
        # before the error, so its sequence_number follows the last one the client saw.
        self.pending = b""

    @property
    def done(self) -> bool:
        return self.translator.done

    def frames(self, events: list[Event]) -> bytes:
        feed, write = self.translator.feed, self.writer.chunk
        out: list[tuple[str, dict[str, Any]]] = []
        try:
            for event in events:
                for piece in feed(event):
                    out += write(piece)
        except GatewayError:
            self.pending = _frames(out)
            raise
        return _frames(out)

    def tail(self) -> bytes:
        return _frames(
            [out for piece in self.translator.finish() for out in self.writer.chunk(piece)]
        )

    def final_usage(self) -> Usage:
        return self.translator.final_usage(self.body.get("messages"))

    def response_id(self) -> str:
        return self.writer.shape.id

    def closing(self, usage: Usage, cost: Decimal) -> bytes:
        return _frames(self.writer.close(usage, cost))

    def failure(self, error: GatewayError) -> bytes:
        error_event = self.writer.error_event(error.code, error.message, error.param)
        return self.pending + _frames([error_event])


def _frames(events: list[tuple[str, dict[str, Any]]]) -> bytes:
    return b"".join([named_frame(name, orjson.dumps(data)) for name, data in events])
