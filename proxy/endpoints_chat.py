"""POST /v1/chat/completions: authenticate, resolve, send with failover, relay, meter."""

import asyncio
import time
from typing import Any

import httpx
import orjson
from django.conf import settings

from proxy.adapters import adapter_for
from proxy.adapters.base import ProviderAdapter, StreamTranslator
from proxy.auth import authenticate
from proxy.calls import CallRecord, estimate_tokens, priced_usage, prompt_chars
from proxy.endpoints_models import model_not_found, routing_or_503
from proxy.errors import GatewayError, InvalidRequest, UpstreamError, UpstreamTimeout
from proxy.http import JSON_CONTENT_TYPE, Request, Response
from proxy.routing import Card
from proxy.runtime import Runtime
from proxy.sse import DONE, SSEParser, frame
from proxy.upstream import Opened, timeouts_for
from proxy.usage import Usage
from proxy.validation import validate_chat

ZERO_USAGE = Usage()


def resolve_chat_card(runtime: Runtime, model: str) -> Card:
    routing = routing_or_503(runtime)
    card = routing.resolve(model)
    if card is None:
        raise model_not_found(routing, model)
    if card.type != "chat":
        raise InvalidRequest(
            f"'{card.title}' is an {card.type} model; use POST /v1/embeddings.",
            param="model",
            code="wrong_model_type",
        )
    return card


async def open_upstream(
    runtime: Runtime, record: CallRecord, adapter: ProviderAdapter, build: Any, *, stream: bool
) -> Opened:
    """Open the upstream call; on failure emit the request's event, then raise."""
    card = record.card
    timeouts = timeouts_for(card)
    try:
        async with asyncio.timeout(timeouts.total):
            opened = await runtime.upstreams.open(
                routing_or_503(runtime).upstreams_for(card),
                build,
                timeouts,
                stream=stream,
                provider=card.provider,
                record=record,
            )
    except TimeoutError:
        error = UpstreamTimeout(f"{card.provider} did not answer within {timeouts.total:g} s.")
        runtime.metering.emit(
            record.event(status=error.status, usage=ZERO_USAGE, error_code=error.code)
        )
        raise error from None
    except GatewayError as error:
        runtime.metering.emit(
            record.event(status=error.status, usage=ZERO_USAGE, error_code=error.code)
        )
        raise
    record.upstream_request_id = opened.response.headers.get("x-request-id")
    if opened.response.status_code >= 400:
        refusal = adapter.client_error(opened.response.status_code, opened.body, card)
        runtime.metering.emit(
            record.event(status=refusal.status, usage=ZERO_USAGE, error_code=refusal.code)
        )
        raise refusal
    return opened


async def chat_completions(request: Request, runtime: Runtime) -> Response | None:
    policy = await authenticate(request, runtime)
    body = await request.json(settings.TOKENBYTE_MAX_BODY_BYTES)
    call = validate_chat(body)
    card = resolve_chat_card(runtime, call.model)
    policy.check_card(card)
    adapter = adapter_for(card.provider)
    record = CallRecord(
        request_id=request.request_id,
        new_id=runtime.ids,
        endpoint="chat.completions",
        card=card,
        key_id=policy.key_id,
        account_id=policy.account_id,
        stream=call.stream,
    )

    def build(upstream: Any) -> httpx.Request:
        return adapter.chat_request(body, card, upstream, stream=call.stream)

    opened = await open_upstream(runtime, record, adapter, build, stream=call.stream)
    if not call.stream:
        return _complete(runtime, record, adapter, opened)
    await _relay_stream(request, runtime, record, adapter, opened, body, call.include_usage)
    return None


def _complete(
    runtime: Runtime, record: CallRecord, adapter: ProviderAdapter, opened: Opened
) -> Response:
    try:
        data, usage = adapter.chat_response(opened.body, record.card)
    except GatewayError as error:
        # The upstream did the work (and bills us) but its answer is unusable: still recorded.
        runtime.metering.emit(
            record.event(status=error.status, usage=ZERO_USAGE, error_code=error.code)
        )
        raise
    record.mark_first_byte()
    event = record.event(status=200, usage=usage)
    data["usage"] = priced_usage(data.get("usage"), usage, event.cost)
    runtime.metering.emit(event)
    return Response(200, orjson.dumps(data), [JSON_CONTENT_TYPE])


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


async def _relay_stream(
    request: Request,
    runtime: Runtime,
    record: CallRecord,
    adapter: ProviderAdapter,
    opened: Opened,
    body: dict[str, Any],
    include_usage: bool,
) -> None:
    send = request.send
    card = record.card
    translator = adapter.chat_stream(card)
    parser = SSEParser()
    state = _StreamState()
    task = asyncio.current_task()
    if task is None:  # pragma: no cover  # ASGI servers always run handlers in tasks
        raise RuntimeError("streaming needs a running task")
    watcher = asyncio.create_task(_watch_disconnect(request.receive, state, task))
    deadline = time.monotonic() + timeouts_for(card).total
    failure: GatewayError | None = None
    try:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*STREAM_HEADERS, (b"x-request-id", request.request_id.encode())],
            }
        )
        try:
            await _pump(send, opened, parser, translator, record, deadline)
        except GatewayError as error:
            failure = error
        except httpx.TimeoutException:
            failure = UpstreamTimeout(
                f"{card.provider} stopped sending for {settings.TOKENBYTE_STREAM_IDLE_TIMEOUT:g} s."
            )
        except httpx.TransportError as exc:
            failure = UpstreamError(
                f"{card.provider} broke the stream off: {exc or type(exc).__name__}."
            )
        usage = _final_usage(translator, body)
        if failure is None and not translator.done:
            failure = UpstreamError(f"{card.provider} ended the stream before it was complete.")
        event = record.event(
            status=200, usage=usage, error_code=failure.code if failure is not None else None
        )
        runtime.metering.emit(event)
        if failure is not None:
            # An error event, and no [DONE]: the SDKs raise, and nobody mistakes it for the end.
            last = frame(failure.openai_body())
        elif include_usage:
            last = frame(orjson.dumps(_usage_chunk(translator, card, usage, event.cost))) + DONE
        else:
            last = DONE
        state.finished = True
        await send({"type": "http.response.body", "body": last, "more_body": True})
    except asyncio.CancelledError:
        if not state.disconnected:
            raise
        task.uncancel()
        # The client left: the upstream is cancelled below; bill what was produced so far.
        runtime.metering.emit(
            record.event(
                status=200,
                usage=_final_usage(translator, body),
                error_code="client_disconnected",
                client_disconnected=True,
            )
        )
    finally:
        state.finished = True
        watcher.cancel()
        await opened.aclose()
    if not state.disconnected:
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _pump(
    send: Any,
    opened: Opened,
    parser: SSEParser,
    translator: StreamTranslator,
    record: CallRecord,
    deadline: float,
) -> None:
    chunk = opened.body
    chunks = opened.chunks
    if chunks is None:  # pragma: no cover  # open(stream=True) always sets it
        raise RuntimeError("not a streamed response")
    while True:
        out = [
            frame(orjson.dumps(piece))
            for event in (parser.feed(chunk) if chunk else parser.flush())
            for piece in translator.feed(event)
        ]
        if out:
            record.mark_first_byte()
            await send({"type": "http.response.body", "body": b"".join(out), "more_body": True})
        if not chunk:
            break
        if time.monotonic() > deadline:
            raise UpstreamTimeout(f"{record.card.provider} exceeded the total time allowed.")
        chunk = await anext(chunks, b"")
    tail = [frame(orjson.dumps(piece)) for piece in translator.finish()]
    if tail:
        record.mark_first_byte()
        await send({"type": "http.response.body", "body": b"".join(tail), "more_body": True})


def _final_usage(translator: StreamTranslator, body: dict[str, Any]) -> Usage:
    if translator.usage is not None:
        return translator.usage
    return Usage(
        uncached_input=estimate_tokens(prompt_chars(body.get("messages"))),
        output=estimate_tokens(translator.delta_chars, translator.delta_count),
        estimated=True,
    )


def _usage_chunk(
    translator: StreamTranslator, card: Card, usage: Usage, cost: Any
) -> dict[str, Any]:
    return {
        "id": translator.response_id,
        "object": "chat.completion.chunk",
        "created": translator.created,
        "model": card.title,
        "choices": [],
        "usage": priced_usage(None, usage, cost),
    }
