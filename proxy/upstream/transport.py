"""The upstream HTTP/1.1 client: lean requests over pooled keep-alive connections.

A proxy needs little of a general HTTP client (no cookies, redirects or auth flows; an
upstream cookie must never follow one tenant's request into another's), and aiohttp's and
httpcore's per-call costs were the largest in every profile of the gateway (bench/README.md,
where the choice of client is measured against pyreqwest, curl-cffi and aiohttp). So this
transport writes the request head itself; proxy/upstream/connection.py parses answers with
httptools and enforces the framing rules; proxy/upstream/dial.py opens connections (happy
eyeballs, proxies, TLS). Every rule is checked by tests/proxy/conformance/, which any
candidate client must pass.

The pool: per origin, a LIFO of idle connections, at most `max_connections_per_origin` open
(beyond it, callers wait up to the request's pool timeout: httpx.PoolTimeout), idle ones
reaped after `keepalive_seconds` (or the upstream's own Keep-Alive timeout, if shorter).

Retries: a request is sent again on a new connection only when the upstream cannot have read
it: the pooled connection was seen closed before writing (skipped, nothing was sent) or the
write itself failed on a reused connection. Never after the request was fully written: the
upstream may have acted on it.

Requests are `UpstreamRequest`s: httpx.Request normalises headers, re-encodes the body and
derives Host on every construction (23 µs a call, bench/README.md), while the adapters build
ours from known-good parts. Responses are httpx.Response, errors are httpx's (ConnectError,
ConnectTimeout, PoolTimeout, ReadTimeout, ReadError, WriteError, RemoteProtocolError,
LocalProtocolError), and timeouts come from the request's "timeout" extension (connect; read
= the longest silence; pool).
"""

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx

from proxy.upstream.connection import Http1Connection, ResponseBody
from proxy.upstream.dial import Dialer, Origin, Route
from proxy.upstream.request import UpstreamRequest

_DEFAULT_PORTS = {b"http": 80, b"https": 443}


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """What the gateway (from settings) and the conformance suite configure."""

    max_connections_per_origin: int = 1024  # beyond it, wait up to the pool timeout
    keepalive_seconds: float = 30.0  # idle pooled connections older than this are closed
    ca_file: str | None = None  # extra trust anchors (PEM); verification is always on
    resolve: Mapping[str, Sequence[str]] | None = None  # host -> IP addresses, replacing DNS
    trust_env: bool = True  # HTTP(S)_PROXY / NO_PROXY / SSL_CERT_FILE, read at construction
    happy_eyeballs_delay: float = 0.25  # RFC 8305's connection attempt delay


class _OriginPool:
    __slots__ = ("idle", "open", "waiters")

    def __init__(self) -> None:
        self.idle: list[Http1Connection] = []  # LIFO: the warmest connection first
        self.open = 0  # connected or connecting, not yet lost
        self.waiters: deque[asyncio.Future[None]] = deque()

    def wake_one(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class UpstreamTransport:
    def __init__(self, options: TransportOptions | None = None) -> None:
        self.options = options = options or TransportOptions()
        context = httpx.create_ssl_context(trust_env=options.trust_env)
        if options.ca_file:
            context.load_verify_locations(cafile=options.ca_file)
        self._dialer = Dialer(
            context,
            resolve=options.resolve,
            trust_env=options.trust_env,
            happy_eyeballs_delay=options.happy_eyeballs_delay,
        )
        self._pools: dict[Origin, _OriginPool] = {}
        self._reaper: asyncio.TimerHandle | None = None
        self._closing = False

    def route(self, url: httpx.URL) -> Route:
        """Directly or through which proxy requests to `url` travel."""
        return self._dialer.route(_origin(url))

    async def send(self, request: UpstreamRequest) -> httpx.Response:
        origin = _origin(request.url)
        timeout = request.extensions.get("timeout", {})
        read_timeout = timeout.get("read")
        route = self._dialer.route(origin)
        payload = _head(request, route) + request.content
        for attempt in range(2):
            conn = await self._acquire(origin, timeout)
            try:
                assert conn.transport is not None  # noqa: S101  # set by connection_made
                conn.transport.write(payload)
                while not conn.headers_done:
                    await conn.wait(read_timeout)
            except httpx.WriteError:
                conn.close()
                # The write itself failed: the upstream cannot have read this request. On a
                # reused connection that is the upstream closing it as we wrote: once more, anew.
                if attempt == 0 and conn.reused and not conn.received_any:
                    continue
                raise
            except BaseException:
                conn.close()  # a cancellation too: what arrives later must reach no one
                raise
            break
        return httpx.Response(
            status_code=conn.status,
            headers=conn.headers,
            stream=ResponseBody(self, conn, read_timeout),
            extensions={"http_version": b"HTTP/1.1"},
        )

    # --- the pool --------------------------------------------------------------------------
    async def _acquire(self, origin: Origin, limits: Mapping[str, float | None]) -> Http1Connection:
        if self._closing:
            raise httpx.ConnectError("The upstream client is closed.")
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = _OriginPool()
        while True:
            now = time.monotonic()
            while pool.idle:
                conn = pool.idle.pop()
                transport = conn.transport
                if (
                    now < conn.reuse_until
                    and not conn.closed
                    and transport is not None
                    and not transport.is_closing()
                ):
                    conn.idle = False
                    conn.reused = True
                    conn.begin()
                    return conn
                conn.close()  # seen closed, or too old: nothing was sent on it
            if pool.open < self.options.max_connections_per_origin:
                return await self._open(origin, pool, limits.get("connect"))
            await self._wait_for_room(origin, pool, limits.get("pool"))

    async def _open(
        self, origin: Origin, pool: _OriginPool, connect_timeout: float | None
    ) -> Http1Connection:
        pool.open += 1
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_timeout):
                conn = await self._dialer.dial(origin, lambda: Http1Connection(loop))
        except BaseException as exc:
            pool.open -= 1
            pool.wake_one()
            if isinstance(exc, TimeoutError):
                _, host, port = origin
                raise httpx.ConnectTimeout(f"Connecting to {host}:{port} timed out.") from None
            raise
        conn.origin = origin
        conn.on_lost = lambda lost: self._lost(pool, lost)
        if conn.closed:  # lost before we could watch it
            self._lost(pool, conn)
            conn.on_lost = None
            raise httpx.ConnectError("The upstream closed the connection at once.")
        return conn

    async def _wait_for_room(
        self, origin: Origin, pool: _OriginPool, pool_timeout: float | None
    ) -> None:
        waiter = asyncio.get_running_loop().create_future()
        pool.waiters.append(waiter)
        try:
            async with asyncio.timeout(pool_timeout):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                pool.wake_one()  # woken as we gave up: the place goes to the next in line
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    pool.waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                _, host, port = origin
                raise httpx.PoolTimeout(
                    f"All {self.options.max_connections_per_origin} connections to "
                    f"{host}:{port} stayed busy."
                ) from None
            raise

    def _lost(self, pool: _OriginPool, conn: Http1Connection) -> None:
        pool.open -= 1
        if conn.idle:
            with contextlib.suppress(ValueError):
                pool.idle.remove(conn)
        pool.wake_one()

    def release(self, conn: Http1Connection) -> None:
        """The body is done with: to the pool if the exchange ended well, else closed."""
        now = time.monotonic()
        # Not lost yet (still counted by its pool), and the exchange ended well.
        pool = self._pools.get(conn.origin) if conn.on_lost is not None and conn.origin else None
        if self._closing or pool is None or not conn.reusable(now):
            conn.close()
            return
        conn.idle = True
        conn.reuse_until = min(now + self.options.keepalive_seconds, conn.upstream_keeps_until)
        pool.idle.append(conn)
        if pool.waiters:
            pool.wake_one()
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().call_later(
                self.options.keepalive_seconds, self._reap
            )

    def _reap(self) -> None:
        """Close idle connections past their keep-alive; again later while any stay idle."""
        self._reaper = None
        now = time.monotonic()
        idle_left = False
        for pool in self._pools.values():
            for conn in list(pool.idle):
                if now >= conn.reuse_until or conn.closed:
                    pool.idle.remove(conn)
                    conn.close()
            idle_left = idle_left or bool(pool.idle)
        if idle_left and not self._closing:
            self._reaper = asyncio.get_running_loop().call_later(
                self.options.keepalive_seconds / 2, self._reap
            )

    async def aclose(self) -> None:
        self._closing = True
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        for pool in self._pools.values():
            for conn in pool.idle:
                conn.close()
            pool.idle.clear()


def _origin(url: httpx.URL) -> Origin:
    return (url.raw_scheme, url.host, url.port or _DEFAULT_PORTS[url.raw_scheme])


def _head(request: UpstreamRequest, route: Route) -> bytes:
    url = request.url
    if request.method == "HEAD":  # its answer's length describes no body: not framed for us
        raise httpx.LocalProtocolError("HEAD requests are not supported upstream.")
    target = url.raw_path
    if route.absolute_form:
        target = b"%s://%s%s" % (url.raw_scheme, url.netloc, target)
    lines = [
        b"%s %s HTTP/1.1\r\nhost: %s\r\ncontent-length: %d\r\n"
        % (request.method.encode(), target, url.netloc, len(request.content))
    ]
    encoding_asked = False
    for name, value in request.headers:
        if b"\r" in value or b"\n" in value:
            raise httpx.LocalProtocolError(f"Header {name!r} holds a line break.")
        # Adapters write header names in lower case.
        encoding_asked = encoding_asked or name == b"accept-encoding"
        lines.append(b"%s: %s\r\n" % (name, value))
    if not encoding_asked:
        lines.append(b"accept-encoding: identity\r\n")
    lines.extend(b"%s: %s\r\n" % header for header in route.proxy_headers)
    lines.append(b"\r\n")
    return b"".join(lines)
