"""The upstream HTTP/1.1 client: lean requests and keep-alive connections, httpx's responses.

aiohttp's client path was the largest single cost in every profile of the gateway and most of
its added time to first byte (bench/README.md). A proxy needs little of it: no cookies,
redirects, decompression, proxies or tracing. So this transport writes the request head itself,
leaves parsing to httptools (llhttp, the parser under uvicorn and Node.js), TLS to `ssl`, and
keeps a LIFO pool of idle connections per origin. Bytes go to the consumer as they arrive;
reading pauses while more than HIGH_WATER bytes wait, so a slow client slows its upstream.

Requests are `UpstreamRequest`s: httpx.Request normalises headers, re-encodes the body and
derives Host on every construction (23 µs a call, bench/README.md), while the adapters build
ours from known-good parts. Responses are httpx.Response, errors are httpx's (ConnectError,
ConnectTimeout, ReadTimeout, ReadError, RemoteProtocolError), and timeouts come from the
request's "timeout" extension (connect; read = the longest silence).
"""

import asyncio
import socket
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import httptools
import httpx

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
KEEPALIVE_SECONDS = 30.0  # idle connections older than this are closed, not reused
MAX_IDLE_PER_ORIGIN = 2048
DNS_TTL = 300.0

Origin = tuple[bytes, str, int]  # scheme, host, port
Headers = list[tuple[bytes, bytes]]


class UpstreamRequest:
    """One call to a provider, as an adapter builds it."""

    __slots__ = ("content", "extensions", "headers", "method", "url")

    def __init__(self, method: str, url: httpx.URL, headers: Headers, content: bytes) -> None:
        self.method = method
        self.url = url
        self.headers = headers  # without Host and Content-Length: the transport adds them
        self.content = content
        self.extensions: dict[str, Any] = {}

    def to_httpx(self) -> httpx.Request:
        """For httpx's own transports (HTTP/2)."""
        request = httpx.Request(self.method, self.url, headers=self.headers, content=self.content)
        request.extensions = self.extensions
        return request


class _Connection(asyncio.Protocol):
    """One upstream connection carrying one response at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self._begin()

    def _begin(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.complete = False
        self.received_any = False
        self.until_close = False  # no length and not chunked: the body ends with the connection
        self.keep_alive = False
        self.error: Exception | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None

    # --- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"Malformed HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.headers_done and self.until_close and not self.complete:
            self.complete = True
            self._wake()
        elif not self.complete:
            self._fail(httpx.ReadError(f"The upstream closed the connection ({exc or 'EOF'})."))

    # --- httptools callbacks ---------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        # llhttp forgets this once the message is complete: read it now.
        self.keep_alive = self.parser.should_keep_alive()
        self.headers_done = True
        names = {name.lower() for name, _ in self.headers}
        self.until_close = b"content-length" not in names and b"transfer-encoding" not in names
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._wake()

    # --- the consumer's side ---------------------------------------------------------------
    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: Exception) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    async def wait(self, patience: float | None) -> None:
        """Until something arrives; httpx.ReadTimeout after `patience` seconds of silence."""
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

    def reusable(self) -> bool:
        return self.complete and not self.closed and self.keep_alive

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(httpx.ReadTimeout("The upstream sent nothing in time."))


class _Body(httpx.AsyncByteStream):
    def __init__(
        self, pool: "UpstreamTransport", origin: Origin, conn: _Connection, read_timeout: Any
    ) -> None:
        self._pool = pool
        self._origin = origin
        self._conn: _Connection | None = conn
        self._read_timeout: float | None = read_timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        while conn is not None:
            if conn.chunks:
                yield conn.take()
            elif conn.complete:
                break
            else:
                await conn.wait(self._read_timeout)

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.release(self._origin, conn)


class UpstreamTransport:
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context or httpx.create_ssl_context()
        self._idle: dict[Origin, list[_Connection]] = {}
        self._addresses: dict[tuple[str, int], tuple[float, list[tuple[Any, ...]]]] = {}
        self._lookups: dict[tuple[str, int], asyncio.Future[list[tuple[Any, ...]]]] = {}
        self._closing = False

    async def send(self, request: UpstreamRequest) -> httpx.Response:
        url = request.url
        origin: Origin = (url.raw_scheme, url.host, url.port or _DEFAULT_PORTS[url.raw_scheme])
        timeout = request.extensions.get("timeout", {})
        read_timeout = timeout.get("read")
        payload = _head(request) + request.content
        for attempt in range(2):
            conn = await self._acquire(origin, timeout.get("connect"))
            try:
                assert conn.transport is not None  # noqa: S101  # set by connection_made
                conn.transport.write(payload)
                while not conn.headers_done:
                    await conn.wait(read_timeout)
            except (httpx.ReadError, httpx.RemoteProtocolError):
                conn.close()
                # A kept-alive connection that ends before any byte of an answer was, all but
                # surely, closed by the upstream as it idled while the request crossed its
                # FIN: retried once on a new connection, as browsers do with reused sockets.
                if attempt == 0 and conn.reused and not conn.received_any:
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            break
        return httpx.Response(
            status_code=conn.status,
            headers=conn.headers,
            stream=_Body(self, origin, conn, read_timeout),
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def _acquire(self, origin: Origin, connect_timeout: float | None) -> _Connection:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < KEEPALIVE_SECONDS:
                conn.reused = True
                conn._begin()
                return conn
            conn.close()
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        tls = scheme == b"https"
        try:
            async with asyncio.timeout(connect_timeout):
                addresses = await self._resolve(host, port)
                for index, address in enumerate(addresses):
                    try:
                        _, conn = await loop.create_connection(
                            lambda: _Connection(loop),
                            address[0],
                            address[1],
                            ssl=self._ssl if tls else None,
                            server_hostname=host if tls else None,
                        )
                        return conn
                    except OSError:
                        if index == len(addresses) - 1:
                            raise
        except TimeoutError:
            raise httpx.ConnectTimeout(f"Connecting to {host}:{port} timed out.") from None
        except OSError as exc:
            raise httpx.ConnectError(f"Cannot connect to {host}:{port}: {exc}") from exc
        raise httpx.ConnectError(f"{host} has no address.")

    async def _resolve(self, host: str, port: int) -> list[tuple[Any, ...]]:
        """The host's addresses, looked up once per DNS_TTL: a burst of new connections to one
        provider must not queue a thousand lookups on the executor's threads."""
        key = (host, port)
        cached = self._addresses.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        pending = self._lookups.get(key)
        if pending is None:
            pending = self._lookups[key] = asyncio.ensure_future(self._lookup(host, port))
            pending.add_done_callback(lambda _: self._lookups.pop(key, None))
        return await asyncio.shield(pending)

    async def _lookup(self, host: str, port: int) -> list[tuple[Any, ...]]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [info[4] for info in infos]
        self._addresses[(host, port)] = (time.monotonic() + DNS_TTL, addresses)
        return addresses

    def release(self, origin: Origin, conn: _Connection) -> None:
        idle = self._idle.setdefault(origin, [])
        if self._closing or not conn.reusable() or len(idle) >= MAX_IDLE_PER_ORIGIN:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    async def aclose(self) -> None:
        self._closing = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


_DEFAULT_PORTS = {b"http": 80, b"https": 443}


def _head(request: UpstreamRequest) -> bytes:
    url = request.url
    lines = [
        b"%s %s HTTP/1.1\r\nhost: %s\r\ncontent-length: %d\r\n"
        % (request.method.encode(), url.raw_path, url.netloc, len(request.content))
    ]
    for name, value in request.headers:
        if b"\r" in value or b"\n" in value:
            raise httpx.LocalProtocolError(f"Header {name!r} holds a line break.")
        lines.append(b"%s: %s\r\n" % (name, value))
    lines.append(b"\r\n")
    return b"".join(lines)
