"""POST /v1/responses: OpenAI's Responses API, passed through to OpenAI cards and translated
for the others.

To an OpenAI card the body goes to the upstream's /v1/responses as the client sent it, but for
its `model` (the card's upstream id), an output limit lowered to fit the ceiling
(`max_output_tokens`) and a hosted tools' limit (`max_tool_calls`, pipeline/responses_tools.py).
The answer, or each event of its stream, comes back as it came, with the catalog title as its
`model` and its `usage` priced (providers/openai_responses.py); `store` and OpenAI's own
`previous_response_id` are OpenAI's. To other cards it goes through the chat core
(dialects/responses_translate.py) and back (dialects/responses_output.py); with `store` the
gateway keeps the response (stored_responses.py), which `previous_response_id` and
`item_reference` then continue from, on any card (an OpenAI card gets the stored items).
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
from django.conf import settings

from billing.usage import Usage
from proxy.gateway.dialects.openai_responses import validate_responses
from proxy.gateway.dialects.responses_events import ResponsesEventWriter
from proxy.gateway.dialects.responses_output import ResponseShape, response_from_completion
from proxy.gateway.dialects.responses_state import (
    for_openai,
    input_items,
    previous_not_found,
    references,
    resolved,
    with_ids,
)
from proxy.gateway.dialects.responses_translate import chat_body
from proxy.gateway.errors import GatewayError
from proxy.gateway.http import Request, Response
from proxy.gateway.pipeline.call import Pipeline
from proxy.gateway.pipeline.calls import CallRecord
from proxy.gateway.pipeline.ceiling import OutputLimit
from proxy.gateway.pipeline.relay import StreamOutput, relay_stream
from proxy.gateway.pipeline.responses_tools import responses_server_tools
from proxy.gateway.pipeline.server_tools import chat_server_tools
from proxy.gateway.pipeline.translated import TranslatedStream
from proxy.gateway.routing import Card, ProviderKind
from proxy.gateway.sse import Event, named_frames
from proxy.gateway.stored_responses import StoredResponses
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


@dataclass(frozen=True, slots=True)
class Continuation:
    """What a request continues of stored responses."""

    previous: str | None  # its previous_response_id, as the response echoes it
    chain: list[str]  # what a response made now continues: the previous one's chain and its id
    items: list[dict[str, Any]]  # this request's own input items, references resolved


async def responses(
    request: Request, pipeline: Pipeline, stored: StoredResponses
) -> Response | None:
    policy = await pipeline.authenticate(request)
    with pipeline.record(request, policy, "responses") as record:
        body = await request.json(settings.TOKENBYTE_MAX_BODY_BYTES)
        call = validate_responses(body, request.raw)
        card = await pipeline.admit(record, call.model, card_type="chat", stream=call.stream)
        adapter = adapter_for(card.provider)
        openai = adapter if card.provider == ProviderKind.OPENAI else None
        if not isinstance(openai, OpenAIAdapter):
            turn = await _continuation(stored, policy.account_id, body, openai=False)
            return await _translated(request, pipeline, record, body, card, adapter, turn, stored)
        turn = await _continuation(stored, policy.account_id, body, openai=True)
        check_service_tier(body, card, forwarded=True)
        tier = body.get("service_tier")
        await pipeline.reserve(
            record,
            request.raw if turn is None else orjson.dumps(body),
            responses_output_limit(body),
            service_tier=tier if isinstance(tier, str) else None,
            tools=responses_server_tools(body, card),
            stored_context=call.stored_context if turn is None else _openai_state(body),
        )

        def build(upstream: Any) -> UpstreamRequest:
            return responses_request(openai, body, card, upstream, stream=call.stream)

        opened = await pipeline.open_upstream(record, adapter, build, stream=call.stream)
        if not call.stream:
            parse = lambda payload: responses_response(payload, card)  # noqa: E731
            return await pipeline.complete(record, opened, parse, _priced_response)
        await relay_stream(request, record, opened, ResponsesOutput(ResponsesEvents(card, body)))
        return None


async def _continuation(
    stored: StoredResponses, account_id: int, body: dict[str, Any], *, openai: bool
) -> Continuation | None:
    """The stored context put in front of the input (body["input"] replaced), or None when
    the request continues nothing the gateway stored. An OpenAI card's unknown ids are OpenAI's
    and passed on; another card's are a 400."""
    previous = body.get("previous_response_id")
    items = input_items(body)
    wanted = references(items)
    if not stored.enabled or (previous is None and not wanted):
        return None  # with storage off, chat_body refuses what needs it
    context = await stored.context(account_id, previous) if isinstance(previous, str) else None
    if previous is not None and context is None and not openai:
        raise previous_not_found(str(previous))
    found = await stored.items(account_id, wanted) if wanted else {}
    chain, prior = context if context is not None else ([], [])
    if openai:
        if context is None and not found:
            return None
        # The stored items made fit for OpenAI; the client's own, and references to OpenAI's
        # own items (for OpenAI to resolve), as they came.
        prior = for_openai(prior)
        items = [
            stored_item
            for item in items
            for stored_item in (
                for_openai([found[item["id"]]])
                if item.get("type") == "item_reference" and item["id"] in found
                else [item]
            )
        ]
    else:
        items = resolved(items, found)
    if context is not None:
        del body["previous_response_id"]
    body["input"] = prior + items
    return Continuation(previous if context is not None else None, chain, items)


def _openai_state(body: dict[str, Any]) -> bool:
    """Whether OpenAI still adds stored context of its own to what the body holds."""
    left = any(item.get("type") == "item_reference" for item in input_items(body))
    return left or any(
        body.get(name) is not None for name in ("previous_response_id", "conversation", "prompt")
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
    turn: Continuation | None,
    stored: StoredResponses,
) -> Response | None:
    """Another provider's card: through the chat core and its adapter, and back; kept when
    sent with `store` (OpenAI's default) and the gateway stores responses."""
    stream = body.get("stream") is True
    raw = request.raw if turn is None else orjson.dumps(body)  # the prompt's bound: all of it
    if turn is None:
        turn = Continuation(None, [], input_items(body))
    core, names = chat_body(body, card, stream=stream)
    keep = stored.enabled and body.get("store") is not False
    shape = ResponseShape(body, card, names, stored=keep, previous=turn.previous)

    def lower(tokens: int) -> None:
        body["max_output_tokens"] = core["max_tokens"] = tokens

    await pipeline.reserve(
        record,
        raw,
        OutputLimit(body.get("max_output_tokens"), 1, lower),
        tools=chat_server_tools(core, card),
    )
    policy = record.policy
    kept_input = with_ids(turn.items)

    async def save(response: dict[str, Any]) -> None:
        """Keep the response before the client can name it; said store: false if it failed."""
        if keep and not await stored.save(
            policy.account_id, policy.key_id, shape.kept(response), kept_input, turn.chain
        ):
            response["store"] = False

    def build(upstream: Any) -> UpstreamRequest:
        return adapter.chat_request(core, card, upstream, stream=stream)

    opened = await pipeline.open_upstream(record, adapter, build, stream=stream)
    if not stream:
        made: list[dict[str, Any]] = []

        def render(data: dict[str, Any], usage: Usage, cost: Decimal) -> dict[str, Any]:
            made.append(response_from_completion(shape, data, usage, cost))
            return made[0]

        parse = lambda payload: adapter.chat_response(payload, card, core)  # noqa: E731
        answer = await pipeline.complete(record, opened, parse, render)
        if keep:
            await save(made[0])
            if made[0]["store"] is False:
                answer.body = orjson.dumps(made[0])
        return answer
    translator, writer = adapter.chat_stream(card, core), ResponsesEventWriter(shape)
    output = (
        StoredStream(translator, core, writer, save)
        if keep
        else TranslatedStream(translator, core, writer)
    )
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
        return self.pending + self.events.failure_frames(error.code, error.message, error.param)


class StoredStream(TranslatedStream):
    """A translated stream whose final response is kept (a stored one) before it is sent."""

    __slots__ = ("ending", "save")

    def __init__(
        self,
        translator: StreamTranslator,
        body: dict[str, Any],
        writer: ResponsesEventWriter,
        save: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        super().__init__(translator, body, writer)
        self.save = save
        self.ending: list[tuple[str, dict[str, Any]]] | None = None

    async def completed(self, usage: Usage, cost: Decimal) -> None:
        self.ending = self.writer.close(usage, cost)
        await self.save(self.ending[-1][1]["response"])

    def closing(self, usage: Usage, cost: Decimal) -> bytes:
        if self.ending is None:
            return super().closing(usage, cost)
        return named_frames(self.ending)
