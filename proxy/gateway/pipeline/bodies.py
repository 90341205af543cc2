"""Body logging's capture: a call's request body and the bytes its client was sent, for the
accounts that keep them (KeyPolicy.log_bodies, their choice on /settings/).

Other accounts pay one attribute test (Pipeline.record) and nothing else. For those that keep
them, the capture stands in for the request's `send`: every answer leaves through it, whole
(the app's send_response), streamed (pipeline/relay.py) or an error the app rendered, so what
it keeps is exactly what the client got, a stream as its SSE bytes. It keeps at most
TOKENBYTE_BODY_LOG_MAX_BYTES of each body and counts the rest. It also stands between the call
record and metering, to learn the call's usage event (its id, its account, its start).

Closed by the last bytes sent, or by the app once the request is over (a client that left
mid-stream gets no last bytes), it hands the bodies to the body log (proxy/gateway/bodylog.py),
which never blocks. Headers are never kept (so neither the client's Authorization or x-api-key
nor anything else of them), nor anything sent upstream (where the upstream's credential goes).
"""

import asyncio
import logging
from collections.abc import Callable

from billing.bodies import CapturedBodies, Excerpt
from billing.events import UsageEvent
from proxy.gateway.http import Message, Request, Send

logger = logging.getLogger(__name__)

Sink = Callable[[UsageEvent], "asyncio.Future[bool] | None"]


class BodyCapture:
    __slots__ = (
        "_closed",
        "_deliver",
        "_event",
        "_kept",
        "_limit",
        "_parts",
        "_request",
        "_send",
        "_size",
        "_status",
    )

    def __init__(
        self, request: Request, *, limit: int, deliver: Callable[[CapturedBodies], None]
    ) -> None:
        self._request = request
        self._limit = limit
        self._deliver = deliver
        self._send: Send = request.send
        self._parts: list[bytes] = []
        self._kept = 0
        self._size = 0
        self._status = 0
        self._event: UsageEvent | None = None
        self._closed = False
        request.send = self.send
        request.capture = self

    def metered(self, sink: Sink) -> Sink:
        """`sink`, told the call's one usage event after this capture has seen it."""

        def meter(event: UsageEvent) -> "asyncio.Future[bool] | None":
            self._event = event
            return sink(event)

        return meter

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            body = message.get("body", b"")
            if body:
                self._size += len(body)
                room = self._limit - self._kept
                if room > 0:  # past the limit nothing more is kept, only counted
                    piece = body[:room]
                    self._parts.append(piece)
                    self._kept += len(piece)
            await self._send(message)
            if not message.get("more_body", False):
                self.close()
            return
        if kind == "http.response.start":
            self._status = message["status"]
        await self._send(message)

    def close(self) -> None:
        """Hand the bodies over (once); a call with no usage event (none was emitted: its
        request never got a record) has nothing to attach them to."""
        if self._closed:
            return
        self._closed = True
        event = self._event
        if event is None or event.account_id is None:
            return
        raw = self._request.raw
        limit = self._limit
        try:
            self._deliver(
                CapturedBodies(
                    event_id=event.event_id,
                    account_id=event.account_id,
                    started_us=round(event.started_at * 1_000_000),
                    request=Excerpt.of(raw, len(raw), limit),
                    response=Excerpt.of(b"".join(self._parts), self._size, limit),
                    status=self._status,
                )
            )
        except Exception:  # the client has its answer; a body log's failure is only logged
            logger.exception("request %s: keeping its bodies failed", self._request.request_id)
