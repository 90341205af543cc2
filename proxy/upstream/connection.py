"""One upstream HTTP/1.1 connection, and the framing rules that keep tenants apart.

A connection carries one exchange at a time, and goes back to the pool only after a complete,
well-framed final response (DESIGN.md §2b). So:
- interim responses (100 Continue, 103 Early Hints) are skipped: the final response is the
  answer, and nothing of the exchange is left on the connection for the next request;
- a body cut short (Content-Length not reached, chunked without its last chunk, a
  close-delimited body ended by a reset rather than an orderly close) is an error, never a
  complete answer;
- any byte that arrives when no answer is owed (after the end of a response, or while idle in
  the pool) closes the connection: it cannot be an answer to anything we sent;
- bodies encoded despite `accept-encoding: identity` are decoded (gzip, deflate) or refused.

httptools (llhttp, the parser under uvicorn and Node.js) parses. Bytes go to the consumer as
they arrive; reading pauses while more than HIGH_WATER bytes wait, so a slow client slows its
upstream. The write buffer is watched (high-water mark 0), so the transport knows whether the
request was fully handed to the kernel: what decides whether a failed exchange may be retried.
"""

import asyncio
import math
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import httptools
import httpx

HIGH_WATER = 256 * 1024
Headers = list[tuple[bytes, bytes]]


class ConnectionPool(Protocol):
    """Where a connection goes back once its answer was read whole (transport.py's pool)."""

    def release(self, conn: "Http1Connection") -> None: ...


# Seconds before the upstream's own keep-alive deadline that we stop reusing a connection: a
# request sent just as the upstream closes would be lost (and may not be retried).
KEEPALIVE_MARGIN = 1.0


class Http1Connection(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False  # lost, closing or seen closed: never written to again
        self.idle = False  # in the pool: no answer is owed, any byte closes the connection
        self.reused = False
        self.reuse_until = math.inf  # set by the pool when it takes the connection back
        self.upstream_keeps_until = math.inf  # from the upstream's `Keep-Alive: timeout=N`
        self.unsent = False  # request bytes still in our write buffer
        self.origin: tuple[bytes, str, int] | None = None  # the pool it belongs to
        self.on_lost: Callable[[Http1Connection], None] | None = None  # the pool's bookkeeping
        # One parser for the connection's life: llhttp starts on the next message by itself
        # once one is complete (a connection is reused only after a complete, clean answer).
        self.parser = httptools.HttpResponseParser(self)
        self.interim = False  # parsing a 1xx, whose end is not the end of the exchange
        self.error: Exception | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None
        self.begin()

    def begin(self) -> None:
        """Fresh state for the next exchange (a complete, clean exchange left no error and no
        waiter behind; what its reader did not take is dropped: it was that exchange's)."""
        if self.buffered:
            self.take()
        self.status = 0
        self.headers: Headers = []
        self.headers_done = False
        self.complete = False
        self.received_any = False
        self.until_close = False  # no length and not chunked: the body ends with the connection
        self.keep_alive = False
        self.decoder: zlib._Decompress | None = None

    # --- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        # pause_writing/resume_writing then tell exactly when our bytes left the buffer.
        self.transport.set_write_buffer_limits(high=0)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        if self.idle or self.complete or self.closed:
            # No answer is owed: these bytes answer nothing we sent, and must reach no one.
            self.close()
            return
        self.received_any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("The upstream switched protocols unasked."))
            self.close()
        except httptools.HttpParserError as exc:
            refusal = exc.__context__  # what one of our callbacks raised, if one did
            if isinstance(refusal, httpx.TransportError):
                self._fail(refusal)
            elif not self.complete:
                self._fail(httpx.RemoteProtocolError(f"Malformed HTTP response: {exc}"))
            self.close()  # bytes after a complete response: it stands, the connection goes

    def eof_received(self) -> bool | None:
        if self.headers_done and self.until_close and not self.complete:
            self._finish()  # an orderly close is how a close-delimited body ends
        self.closed = True
        return None  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete:
            if self.unsent:
                self._fail(httpx.WriteError(f"Sending the request failed ({exc or 'closed'})."))
            elif exc is not None:
                self._fail(httpx.ReadError(f"The upstream reset the connection ({exc})."))
            else:
                self._fail(httpx.ReadError("The upstream closed the connection mid-response."))
        on_lost, self.on_lost = self.on_lost, None
        if on_lost is not None:
            on_lost(self)

    def pause_writing(self) -> None:
        self.unsent = True

    def resume_writing(self) -> None:
        self.unsent = False

    # --- httptools callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.complete:  # a second response to one request: nobody asked for it
            raise _StrayResponse

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:
            # 100 Continue, 103 Early Hints: not the answer; their headers belong to no one.
            self.interim = True
            self.headers = []
            return
        self.status = status
        # llhttp forgets this once the message is complete: read it now.
        self.keep_alive = self.parser.should_keep_alive()
        framed = status in (204, 304)
        for name, value in self.headers:
            lowered = name.lower()
            if lowered in (b"content-length", b"transfer-encoding"):
                framed = True
            elif lowered == b"content-encoding":
                self._decode(value)
            elif lowered == b"keep-alive":
                self._note_keep_alive(value)
        self.until_close = not framed
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.decoder is not None:
            try:
                body = self.decoder.decompress(body)
            except zlib.error as exc:
                raise httpx.RemoteProtocolError(
                    f"The upstream's encoded body is corrupt: {exc}"
                ) from exc
            if not body:
                return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        self._finish()

    # --- helpers ---------------------------------------------------------------------------
    def _finish(self) -> None:
        if self.decoder is not None:
            if not self.decoder.eof:
                self._fail(httpx.RemoteProtocolError("The upstream's encoded body is cut short."))
                return
            rest = self.decoder.flush()
            if rest:
                self.chunks.append(rest)
        self.complete = True
        self._wake()

    def _decode(self, value: bytes) -> None:
        encoding = value.strip().lower()
        if encoding in (b"gzip", b"x-gzip"):
            self.decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == b"deflate":
            self.decoder = zlib.decompressobj()
        elif encoding not in (b"", b"identity"):
            # br, zstd, or a chain of several: we asked for identity and decode only zlib's.
            raise httpx.RemoteProtocolError(
                f"The upstream sent a {encoding.decode(errors='replace')!r}-encoded body though "
                "the gateway asked for identity."
            )
        self.headers = [
            (n, v)
            for n, v in self.headers
            if n.lower() not in (b"content-encoding", b"content-length")
        ]

    def _note_keep_alive(self, value: bytes) -> None:
        for part in value.split(b","):
            key, _, number = part.strip().partition(b"=")
            if key.strip().lower() == b"timeout" and number.strip().isdigit():
                self.upstream_keeps_until = time.monotonic() + int(number) - KEEPALIVE_MARGIN

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: Exception) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    # --- the consumer's side ---------------------------------------------------------------
    async def wait(self, patience: float | None) -> None:
        """Until something happens; httpx.ReadTimeout after `patience` seconds of silence."""
        if self.error is not None:
            raise self.error
        waiter = self.waiter = self.loop.create_future()
        timer = None if patience is None else self.loop.call_later(patience, _expire, waiter)
        try:
            await waiter
        finally:
            self.waiter = None
            if timer is not None:
                timer.cancel()
        if self.error is not None:
            raise self.error

    def take(self) -> bytes:
        data = self.chunks.popleft() if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    def reusable(self, now: float) -> bool:
        return (
            self.complete
            and self.keep_alive
            and self.error is None
            and not self.closed
            and now < self.upstream_keeps_until
        )

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _StrayResponse(Exception):
    """Bytes past the end of the answer: the connection closes, the answer stands."""


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(httpx.ReadTimeout("The upstream sent nothing in time."))


class ResponseBody(httpx.AsyncByteStream):
    """The body as it arrives; closing it hands the connection back (or closes it)."""

    def __init__(
        self, pool: "ConnectionPool", conn: Http1Connection, read_timeout: float | None
    ) -> None:
        self._pool = pool
        self._conn: Http1Connection | None = conn
        self._read_timeout = read_timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        try:
            while conn is not None:
                if conn.chunks:
                    yield conn.take()
                elif conn.complete:
                    break
                else:
                    await conn.wait(self._read_timeout)
        except BaseException:
            # A timeout, a cut, a cancellation: the rest of this body must reach no one.
            if conn is not None:
                conn.close()
            raise

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.release(conn)
