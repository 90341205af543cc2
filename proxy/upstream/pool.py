"""Talking to providers: one pooled transport, credential choice, retries, failover, cooldowns.

Adapters build UpstreamRequests; our HTTP/1.1 transport (proxy/upstream/transport.py) sends them
and answers with httpx's Response type and exceptions. Measured in bench/README.md, httpx's own
connection pool managed a tenth of its requests per second at 16 concurrent requests. Nothing
of httpx.AsyncClient is wanted here: its cookie jar (an upstream cookie must never follow one
tenant's request into another's), auth flows and redirects.
"""

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings
from redis.exceptions import RedisError

from proxy.gateway.errors import GatewayError, ServiceUnavailable, UpstreamTimeout
from proxy.gateway.routing import Card, Upstream
from proxy.upstream.failures import (
    MAX_COOLDOWN_SECONDS,
    AttemptLog,
    Failure,
    cite_request,
    failure_for_status,
    is_client_error,
    log_failed_attempt,
    transport_failure,
)
from proxy.upstream.request import UpstreamRequest
from proxy.upstream.transport import TransportOptions, UpstreamTransport
from proxy.upstream.wording import failed
from tokenbyte.redis import GatewayRedis, subscribe_forever

logger = logging.getLogger(__name__)

# Pub/sub spans every database of a Redis server: the db number keeps deployments apart.
COOLDOWN_CHANNEL = "tb:upstream-cooldown:{db}"
MAX_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float
    first_byte: float
    idle: float
    total: float


def timeouts_for(card: Card) -> Timeouts:
    first_byte = card.first_byte_timeout or (
        settings.TOKENBYTE_REASONING_FIRST_BYTE_TIMEOUT
        if card.supports_reasoning
        else settings.TOKENBYTE_FIRST_BYTE_TIMEOUT
    )
    return Timeouts(
        connect=settings.TOKENBYTE_CONNECT_TIMEOUT,
        first_byte=float(first_byte),
        idle=settings.TOKENBYTE_STREAM_IDLE_TIMEOUT,
        total=max(settings.TOKENBYTE_TOTAL_TIMEOUT, float(first_byte)),
    )


class _SchemeTransport:
    """HTTPS upstreams over httpx's own HTTP/2-capable pool; the rest over HTTP/1.1.

    httpx's transport takes one proxy: the environment's https proxy for the hosts it applies
    to (our dialer's reading of HTTPS_PROXY / NO_PROXY), none for the others.
    """

    def __init__(self, options: TransportOptions) -> None:
        self.http1 = UpstreamTransport(options)
        limits = httpx.Limits(
            max_connections=options.max_connections_per_origin, max_keepalive_connections=512
        )
        context = httpx.create_ssl_context(trust_env=options.trust_env)
        self.direct = httpx.AsyncHTTPTransport(http2=True, verify=context, limits=limits)
        self.proxied: dict[tuple[str, int], httpx.AsyncHTTPTransport] = {}
        self._limits = limits
        self._context = context

    def _transport_for(self, url: httpx.URL) -> httpx.AsyncHTTPTransport:
        route = self.http1.route(url)
        if route.proxy is None:
            return self.direct
        transport = self.proxied.get(route.proxy)
        if transport is None:
            host, port = route.proxy
            auth = dict(route.proxy_headers)
            proxy = httpx.Proxy(f"http://{host}:{port}", headers=auth)
            transport = self.proxied[route.proxy] = httpx.AsyncHTTPTransport(
                http2=True, verify=self._context, limits=self._limits, proxy=proxy
            )
        return transport

    async def send(self, request: UpstreamRequest) -> httpx.Response:
        if request.url.scheme == "https":
            return await self._transport_for(request.url).handle_async_request(request.to_httpx())
        return await self.http1.send(request)

    async def aclose(self) -> None:
        await self.http1.aclose()
        await self.direct.aclose()
        for transport in self.proxied.values():
            await transport.aclose()


def build_transport() -> UpstreamTransport | _SchemeTransport:
    options = TransportOptions(
        max_connections_per_origin=settings.TOKENBYTE_UPSTREAM_MAX_CONNECTIONS,
        keepalive_seconds=settings.TOKENBYTE_UPSTREAM_KEEPALIVE,
    )
    # HTTP/2 multiplexes many calls over one TLS connection, but httpx's pool costs far more
    # CPU per request than our HTTP/1.1 keep-alive connections (bench/README.md): opt-in.
    if settings.TOKENBYTE_UPSTREAM_HTTP2:
        return _SchemeTransport(options)
    return UpstreamTransport(options)


@dataclass(slots=True)
class Opened:
    """A successful (or client-error) upstream response.

    Non-streaming: `body` is the whole body. Streaming: `body` is the first chunk, read before
    returning so that a failure up to then can still fail over; `chunks` yields the rest.
    """

    response: httpx.Response
    upstream: Upstream
    body: bytes
    chunks: AsyncIterator[bytes] | None
    deadline: float  # on the event loop's clock: when the whole call, retries included, ends

    def upstream_request_id(self) -> str | None:
        """OpenAI and Mistral name it x-request-id; Anthropic, request-id."""
        for name, value in self.response.headers.raw:
            if name.lower() in (b"x-request-id", b"request-id"):
                return value.decode("latin-1")
        return None

    async def aclose(self) -> None:
        await _close(self.response)


class UpstreamPool:
    def __init__(self, redis: GatewayRedis | None) -> None:
        self.transport = build_transport()
        self._redis = redis
        self._channel = COOLDOWN_CHANNEL.format(db=redis.db if redis is not None else 0)
        self._cooling_until: dict[int, float] = {}  # upstream id -> epoch seconds
        self._strikes: dict[int, int] = {}
        self._listener: asyncio.Task[None] | None = None
        self._sharing: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self._redis is not None:
            listener = subscribe_forever(
                self._redis.listener, self._channel, self._on_cooldown, name="cooldown listener"
            )
            self._listener = asyncio.create_task(listener, name="cooldown-listener")

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self.transport.aclose()

    # --- choosing -------------------------------------------------------------------------
    def plan(self, candidates: tuple[Upstream, ...]) -> list[Upstream]:
        """Order to try: by priority, weighted-random within a priority, cooling ones last."""
        now = time.time()
        if len(candidates) == 1 and self._cooling_until.get(candidates[0].id, 0.0) <= now:
            return list(candidates)
        ready: list[Upstream] = []
        cooling: list[Upstream] = []
        index = 0
        while index < len(candidates):
            priority = candidates[index].priority
            group = []
            while index < len(candidates) and candidates[index].priority == priority:
                group.append(candidates[index])
                index += 1
            for upstream in _weighted_shuffle(group):
                (cooling if self._cooling_until.get(upstream.id, 0.0) > now else ready).append(
                    upstream
                )
        cooling.sort(key=lambda u: self._cooling_until.get(u.id, 0.0))
        return ready + cooling

    # --- health ---------------------------------------------------------------------------
    def succeeded(self, upstream: Upstream) -> None:
        if self._strikes.pop(upstream.id, None) is not None:
            self._cooling_until.pop(upstream.id, None)

    def failed(self, upstream: Upstream, cooldown: float) -> None:
        if cooldown <= 0:  # our side's trouble (a request we refused to send, a busy pool)
            return
        strikes = self._strikes.get(upstream.id, 0) + 1
        self._strikes[upstream.id] = strikes
        # Doubling per strike, capped: a burst of concurrent failures must not overflow.
        seconds = min(cooldown * 2 ** min(strikes - 1, 8), MAX_COOLDOWN_SECONDS)
        until = time.time() + seconds
        self._cooling_until[upstream.id] = until
        # INFO: the failed attempt itself was logged as a WARNING with its detail.
        logger.info(
            "upstream %s/%s cooling down for %.1f s", upstream.provider, upstream.name, seconds
        )
        if self._redis is not None:
            task = asyncio.get_running_loop().create_task(self._share_cooldown(upstream.id, until))
            self._sharing.add(task)  # referenced until done, or the loop may drop it
            task.add_done_callback(self._sharing.discard)

    async def _share_cooldown(self, upstream_id: int, until: float) -> None:
        if self._redis is None:
            return
        message = f"{upstream_id}:{until}"
        with contextlib.suppress(RedisError):  # counted and logged by the breaker
            await self._redis.call(
                "cooldown_share", lambda client: client.publish(self._channel, message)
            )

    def _on_cooldown(self, message: dict[str, Any]) -> None:
        if message["type"] != "message":
            return
        upstream_id, _, until = message["data"].decode().partition(":")
        current = self._cooling_until.get(int(upstream_id), 0.0)
        self._cooling_until[int(upstream_id)] = max(current, float(until))

    # --- sending --------------------------------------------------------------------------
    async def open(
        self,
        candidates: tuple[Upstream, ...],
        build: Callable[[Upstream], UpstreamRequest],
        timeouts: Timeouts,
        *,
        stream: bool,
        provider: str,
        record: AttemptLog,
        rejects_credential: Callable[[int, bytes], bool] | None = None,
    ) -> Opened:
        """Send to the first credential that answers; fail over before anything reached the client.

        Returns 2xx responses and the client's own 4xx errors (those would fail anywhere).
        Raises the last failure's GatewayError when every attempt failed.
        """
        if not candidates:
            raise ServiceUnavailable(
                f"No upstream credential is configured for {provider}; an operator adds one "
                f"with `manage.py upstream add {provider} --api-key …`.",
                code="no_upstream",
            )
        last: GatewayError | None = None
        plan = self.plan(candidates)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeouts.total  # retries included
        for attempt, upstream in enumerate(plan[:MAX_ATTEMPTS] if len(plan) > 1 else plan * 2):
            if attempt:
                await asyncio.sleep(_backoff(attempt))
            if loop.time() >= deadline:
                what = f"did not answer within {timeouts.total:g} s"
                raise cite_request(UpstreamTimeout(failed(provider, what)), record.request_id)
            record.attempts += 1
            record.upstream = upstream
            # What the attempt log says of a try that ends otherwise (the client left, say).
            status: int | None = None
            error_code: str | None = "cancelled"
            started = time.perf_counter()
            try:
                opened = await self._attempt(
                    upstream, build(upstream), timeouts, deadline, stream, rejects_credential
                )
                status, error_code = opened.response.status_code, None
            except Failure as failure:
                status, error_code = failure.status, failure.error.code
                log_failed_attempt(record, upstream, failure.error)
                if failure.final:
                    raise cite_request(failure.error, record.request_id) from None
                self.failed(upstream, failure.cooldown)
                last = failure.error
                continue
            finally:
                record.note_attempt(upstream, started, status, error_code)
            if opened.response.status_code < 400:
                self.succeeded(upstream)
            return opened
        raise cite_request(
            last or ServiceUnavailable(failed(provider, "did not answer")), record.request_id
        )

    async def _attempt(
        self,
        upstream: Upstream,
        request: UpstreamRequest,
        timeouts: Timeouts,
        deadline: float,
        stream: bool,
        rejects_credential: Callable[[int, bytes], bool] | None = None,
    ) -> Opened:
        request.extensions["timeout"] = {
            "connect": timeouts.connect,
            "read": timeouts.idle if stream else timeouts.first_byte,
            "write": timeouts.connect,
            "pool": timeouts.connect,
        }
        provider = upstream.provider  # never the credential's name: clients see these messages
        response: httpx.Response | None = None
        first_byte_by = asyncio.get_running_loop().time() + timeouts.first_byte
        try:
            async with asyncio.timeout_at(min(first_byte_by, deadline)):
                response = await self.transport.send(request)
                status = response.status_code
                if status < 400 and stream:
                    chunks = aiter(response.stream)  # type: ignore[arg-type]
                    first = await anext(chunks, b"")
                    return Opened(response, upstream, first, chunks, deadline)
                body = await _read_all(response)
                if status >= 400 and rejects_credential and rejects_credential(status, body):
                    status = 401  # Gemini answers 400 to a bad key: fail over all the same
                if status < 400 or is_client_error(status):
                    await _close(response)
                    return Opened(response, upstream, body, None, deadline)
        except TimeoutError:
            await _close(response)
            if first_byte_by > deadline:
                what = f"did not answer within {timeouts.total:g} s"
                raise Failure(UpstreamTimeout(failed(provider, what)), 0.0, final=True) from None
            what = f"sent nothing within {timeouts.first_byte:g} s"
            raise Failure(UpstreamTimeout(failed(provider, what)), cooldown=5.0) from None
        except httpx.RequestError as exc:
            await _close(response)
            raise transport_failure(provider, exc, timeouts.connect) from exc
        await _close(response)
        failure = failure_for_status(provider, status, body, response.headers)
        failure.status = response.status_code  # what it sent, before a 400 is read as a 401
        raise failure


def _backoff(attempt: int) -> float:
    # Jittered exponential: 50-150 ms, then 100-300 ms; short, as a client is waiting.
    return float(0.1 * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))  # noqa: S311  # jitter


def _weighted_shuffle(group: list[Upstream]) -> list[Upstream]:
    if len(group) == 1:
        return group
    # Efraimidis-Spirakis: sort by u^(1/w); the first pick is proportional to weight.
    return sorted(group, key=lambda u: random.random() ** (1.0 / u.weight), reverse=True)  # noqa: S311


async def _read_all(response: httpx.Response) -> bytes:
    return b"".join([chunk async for chunk in response.stream])  # type: ignore[union-attr]


async def _close(response: httpx.Response | None) -> None:
    if response is not None:
        with contextlib.suppress(Exception):
            await response.aclose()
