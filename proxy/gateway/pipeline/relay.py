"""Relaying a streamed upstream answer: frames out as they arrive, disconnects watched, its
event handed over before the final bytes."""

import asyncio
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
from django.conf import settings

from billing.usage import Usage
from proxy.gateway.errors import GatewayError, UpstreamError, UpstreamTimeout
from proxy.gateway.http import Receive, Request, Send
from proxy.gateway.pipeline.calls import CallRecord
from proxy.gateway.sse import Event, SSEParser
from proxy.upstream.failures import cite_request, exception_detail, log_failed_answer
from proxy.upstream.pool import Opened
from proxy.upstream.wording import failed

logger = logging.getLogger(__name__)


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

    def response_id(self) -> str:
        """The answer's `id` as the client is told it ("" when it has none, or not yet)."""
        return ""

    async def completed(self, usage: Usage, cost: Decimal) -> None:
        """A stream that completed is settled: what must be done before its last bytes are
        made (a stored response kept, so that the client can continue from it at once)."""

    def closing(self, usage: Usage, cost: Decimal) -> bytes:
        """The last bytes of a stream that completed."""
        raise NotImplementedError

    def failure(self, error: GatewayError) -> bytes:
        """The last bytes of a stream that failed after it began."""
        raise NotImplementedError


class _StreamState:
    __slots__ = ("disconnected", "finished")

    def __init__(self) -> None:
        self.disconnected = False
        self.finished = False


async def _watch_disconnect(receive: Receive, state: _StreamState, task: asyncio.Task[Any]) -> None:
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
    request: Request, record: CallRecord, opened: Opened, output: StreamOutput
) -> None:
    send = request.send
    card = record.card
    if card is None:
        raise RuntimeError("relay_stream() before admit()")
    # Whichever way the stream ends, its event bills what was produced by then.
    record.measure = output.final_usage
    record.identify = output.response_id
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
        record.response_status = 200

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
        event = record.settle(usage, error_code=failure.code if failure is not None else None)
        if failure is None:
            await output.completed(usage, event.cost)
        last = output.failure(failure) if failure is not None else output.closing(usage, event.cost)
        record.hand_over()
        await record.until_durable()
        state.finished = True
        await send({"type": "http.response.body", "body": last, "more_body": False})
    except asyncio.CancelledError:
        if not state.disconnected:
            raise
        task.uncancel()
        # The client left (before the final bytes: the watcher stops at `finished`); the
        # upstream is closed below; bill what was produced so far.
        record.settle(
            output.final_usage(), error_code="client_disconnected", client_disconnected=True
        )
    finally:
        state.finished = True
        if watcher is not None:
            watcher.cancel()
        await opened.aclose()


async def _pump(
    send: Send,
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
            raise UpstreamTimeout(failed(record.provider, "exceeded the total time allowed"))
        chunk = await anext(chunks, b"")
    tail = output.tail()
    if tail:
        record.mark_first_byte()
        await send({"type": "http.response.body", "body": tail, "more_body": True})
