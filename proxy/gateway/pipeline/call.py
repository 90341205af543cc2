"""POST /v1/chat/completions: authenticate, resolve, send with failover, relay, meter."""

import asyncio
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import orjson
from django.conf import settings

from billing.usage import Usage
from proxy.gateway.auth.authenticate import KeyPolicy, authenticate
from proxy.gateway.dialects.openai_chat import validate_chat
from proxy.gateway.errors import GatewayError, InvalidRequest, UpstreamError, UpstreamTimeout
from proxy.gateway.http import JSON_CONTENT_TYPE, Request, Response
from proxy.gateway.pipeline.calls import CallRecord, priced_usage
from proxy.gateway.routes.models import model_not_found, routing_or_503
from proxy.gateway.routing import Card
from proxy.gateway.runtime import Runtime
from proxy.gateway.sse import DONE, Event, SSEParser, frame
from proxy.providers import adapter_for
from proxy.providers.base import ProviderAdapter, StreamTranslator
from proxy.upstream.failures import (
    cite_request,
    exception_detail,
    failed,
    log_failed_answer,
    log_refusal,
)
from proxy.upstream.pool import Opened, timeouts_for
from proxy.upstream.transport import UpstreamRequest

ZERO_USAGE = Usage()
logger = logging.getLogger(__name__)


# Where each type of model is served, for the error that sends a client there.
ENDPOINT_FOR_TYPE = {"chat": "POST /v1/chat/completions", "embedding": "POST /v1/embeddings"}


def resolve_card(runtime: Runtime, model: str, *, card_type: str) -> Card:
    """The card a client's `model` names: 404 with suggestions, 400 for the wrong type."""
    routing = routing_or_503(runtime)
    card = routing.resolve(model)
    if card is None:
        raise model_not_found(routing, model)
    if card.type != card_type:
        raise InvalidRequest(
            f"'{card.title}' is {'an' if card.type[0] in 'aeiou' else 'a'} {card.type} model; "
            f"use {ENDPOINT_FOR_TYPE[card.type]}.",
            param="model",
            code="wrong_model_type",
        )
    return card


async def start_call(
    request: Request,
    runtime: Runtime,
    policy: KeyPolicy,
    card: Card,
    endpoint: str,
    *,
    stream: bool,
    rate_limited: bool = True,
) -> CallRecord:
    """Admit a call (the key's allowlist and rate limits) and open its record."""
    policy.check_card(card)
    headers = await runtime.limits.admit(policy) if rate_limited else []
    return CallRecord(
        request_id=request.request_id,
        new_id=runtime.ids,
        endpoint=endpoint,
        card=card,
        key_id=policy.key_id,
        account_id=policy.account_id,
        stream=stream,
        headers=headers,
    )


async def open_upstream(
    runtime: Runtime, record: CallRecord, adapter: ProviderAdapter, build: Any, *, stream: bool
) -> Opened:
    """Open the upstream call; on failure emit the request's event, then raise."""
    card = record.card
    try:
        opened = await runtime.upstreams.open(
            routing_or_503(runtime).upstreams_for(card),
            build,
            timeouts_for(card),
            stream=stream,
            provider=card.provider,
            record=record,
            rejects_credential=adapter.rejects_credential,
        )
    except GatewayError as error:
        runtime.metering.emit(
            record.event(status=error.status, usage=ZERO_USAGE, error_code=error.code)
        )
        raise
    record.upstream_request_id = opened.upstream_request_id()
    if opened.response.status_code >= 400:
        log_refusal(record, opened.upstream, opened.response.status_code, opened.body)
        refusal = cite_request(
            adapter.client_error(opened.response.status_code, opened.body, card), record.request_id
        )
        runtime.metering.emit(
            record.event(status=refusal.status, usage=ZERO_USAGE, error_code=refusal.code)
        )
        raise refusal
    return opened


async def chat_completions(request: Request, runtime: Runtime) -> Response | None:
    policy = await authenticate(request, runtime)
    body = await request.json(settings.TOKENBYTE_MAX_BODY_BYTES)
    call = validate_chat(body)
    card = resolve_card(runtime, call.model, card_type="chat")
    record = await start_call(
        request, runtime, policy, card, "chat.completions", stream=call.stream
    )
    adapter = adapter_for(card.provider)

    def build(upstream: Any) -> UpstreamRequest:
        return adapter.chat_request(body, card, upstream, stream=call.stream)

    opened = await open_upstream(runtime, record, adapter, build, stream=call.stream)
    if not call.stream:
        return complete(
            runtime,
            record,
            opened,
            lambda payload: adapter.chat_response(payload, card, body),
            _priced_completion,
        )
    output = ChatStreamOutput(adapter.chat_stream(card, body), body, call.include_usage)
    await relay_stream(request, runtime, record, opened, output)
    return None


def _priced_completion(data: dict[str, Any], usage: Usage, cost: Decimal) -> dict[str, Any]:
    data["usage"] = priced_usage(data.get("usage"), usage, cost)
    return data


def complete(
    runtime: Runtime,
    record: CallRecord,
    opened: Opened,
    parse: Callable[[bytes], tuple[dict[str, Any], Usage]],
    render: Callable[[dict[str, Any], Usage, Decimal], dict[str, Any]],
) -> Response:
    """A whole upstream answer: parsed, metered once, priced into the client's body."""
    try:
        data, usage = parse(opened.body)
    except GatewayError as error:
        # The upstream did the work (and bills us) but its answer is unusable: still recorded.
        runtime.metering.emit(
            record.event(status=error.status, usage=ZERO_USAGE, error_code=error.code)
        )
        log_failed_answer(record, cite_request(error, record.request_id))
        raise
    record.mark_first_byte()
    event = record.event(status=200, usage=usage)
    data = render(data, usage, event.cost)
    runtime.metering.emit(event)
    return Response(200, orjson.dumps(data), [JSON_CONTENT_TYPE, *record.headers])


class StreamOutput:
    """One streaming endpoint's side of the relay: upstream events in, the client's bytes out."""

    __slots__ = ()

    @property
    def done(self) -> bool:
        """The upstream said its stream is complete."""
        raise NotImplementedError

    def frames(self, events: list[Event]) -> bytes:
        raise NotImplementedError

    def tail(self) -> bytes:
        """What is still owed once the upstream stream has ended."""
        return b""

    def final_usage(self) -> Usage:
        """The usage to bill: the upstream's, or an estimate when it never said."""
        raise NotImplementedError

    def closing(self, usage: Usage, cost: Decimal) -> bytes:
        """The last bytes of a stream that completed."""
        raise NotImplementedError

    def failure(self, error: GatewayError) -> bytes:
        """The last bytes of a stream that failed after it began."""
        raise NotImplementedError


class ChatStreamOutput(StreamOutput):
    """OpenAI chat.completion.chunk frames, the optional usage chunk and data: [DONE]."""

    __slots__ = ("body", "include_usage", "translator")

    def __init__(
        self, translator: StreamTranslator, body: dict[str, Any], include_usage: bool
    ) -> None:
        self.translator = translator
        self.body = body
        self.include_usage = include_usage

    @property
    def done(self) -> bool:
        return self.translator.done

    def frames(self, events: list[Event]) -> bytes:
        feed = self.translator.feed
        return b"".join([frame(orjson.dumps(piece)) for event in events for piece in feed(event)])

    def tail(self) -> bytes:
        return b"".join([frame(orjson.dumps(piece)) for piece in self.translator.finish()])

    def final_usage(self) -> Usage:
        return self.translator.final_usage(self.body.get("messages"))

    def closing(self, usage: Usage, cost: Decimal) -> bytes:
        if not self.include_usage:
            return DONE
        return frame(orjson.dumps(_usage_chunk(self.translator, usage, cost))) + DONE

    def failure(self, error: GatewayError) -> bytes:
        # An error event, and no [DONE]: the SDKs raise, and nobody mistakes it for the end.
        return frame(error.openai_body())


class _StreamState:
    __slots__ = ("disconnected", "finished")

    def __init__(self) -> None:
        self.disconnected = False
        self.finished = False


async def _watch_disconnect(receive: Any, state: _StreamState, task: asyncio.Task[Any]) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            if not state.finished:
                state.disconnected = True
                task.cancel()
            return


STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # tell nginx-style proxies in front not to buffer
]


async def relay_stream(
    request: Request,
    runtime: Runtime,
    record: CallRecord,
    opened: Opened,
    output: StreamOutput,
) -> None:
    send = request.send
    card = record.card
    parser = SSEParser()
    state = _StreamState()
    task = asyncio.current_task()
    if task is None:  # pragma: no cover  # ASGI servers always run handlers in tasks
        raise RuntimeError("streaming needs a running task")
    watcher: asyncio.Task[None] | None = None
    failure: GatewayError | None = None
    try:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    *STREAM_HEADERS,
                    *record.headers,
                    (b"x-request-id", request.request_id.encode()),
                ],
            }
        )

        # Watching for a disconnect starts after the first bytes left: the first byte waits
        # for nothing it does not need (a task's creation is ~35 µs on a cold path).
        def watch() -> None:
            nonlocal watcher
            watcher = asyncio.create_task(_watch_disconnect(request.receive, state, task))

        try:
            await _pump(send, opened, parser, output, record, watch)
        except GatewayError as error:
            failure = error
        except httpx.TimeoutException as exc:
            idle = settings.TOKENBYTE_STREAM_IDLE_TIMEOUT
            failure = UpstreamTimeout(
                failed(card.provider, f"stopped sending for {idle:g} s"),
                detail=exception_detail(exc),
            )
        except httpx.TransportError as exc:
            failure = UpstreamError(
                failed(card.provider, "broke the stream off"), detail=exception_detail(exc)
            )
        except Exception:
            # A translation bug must still end the stream cleanly and meter what was served.
            logger.exception(
                "request %s: stream translation failed for %s", record.request_id, card.title
            )
            failure = UpstreamError(f"The gateway could not translate {card.provider}'s stream.")
        usage = output.final_usage()
        if failure is None and not output.done:
            cut_short = failed(card.provider, "ended the stream before it was complete")
            failure = UpstreamError(cut_short)
        if failure is not None:
            log_failed_answer(record, cite_request(failure, record.request_id))
        event = record.event(
            status=200, usage=usage, error_code=failure.code if failure is not None else None
        )
        runtime.metering.emit(event)
        last = output.failure(failure) if failure is not None else output.closing(usage, event.cost)
        state.finished = True
        await send({"type": "http.response.body", "body": last, "more_body": False})
    except asyncio.CancelledError:
        if not state.disconnected:
            raise
        task.uncancel()
        # The client left: the upstream is cancelled below; bill what was produced so far.
        runtime.metering.emit(
            record.event(
                status=200,
                usage=output.final_usage(),
                error_code="client_disconnected",
                client_disconnected=True,
            )
        )
    finally:
        state.finished = True
        if watcher is not None:
            watcher.cancel()
        await opened.aclose()


async def _pump(
    send: Any,
    opened: Opened,
    parser: SSEParser,
    output: StreamOutput,
    record: CallRecord,
    watch: Callable[[], None] | None,
) -> None:
    loop = asyncio.get_running_loop()
    chunk = opened.body
    chunks = opened.chunks
    if chunks is None:  # pragma: no cover  # open(stream=True) always sets it
        raise RuntimeError("not a streamed response")
    while True:
        out = output.frames(parser.feed(chunk) if chunk else parser.flush())
        if out:
            record.mark_first_byte()
            await send({"type": "http.response.body", "body": out, "more_body": True})
        if watch is not None:
            watch()
            watch = None
        if not chunk:
            break
        if loop.time() > opened.deadline:
            raise UpstreamTimeout(failed(record.card.provider, "exceeded the total time allowed"))
        chunk = await anext(chunks, b"")
    tail = output.tail()
    if tail:
        record.mark_first_byte()
        await send({"type": "http.response.body", "body": tail, "more_body": True})


def _usage_chunk(translator: StreamTranslator, usage: Usage, cost: Decimal) -> dict[str, Any]:
    return {
        "id": translator.response_id,
        "object": "chat.completion.chunk",
        "created": translator.created,
        "model": translator.card.title,
        "choices": [],
        "usage": priced_usage(None, usage, cost),
    }
