"""The one Redis client factory: a client per kind of use, and the breaker on the hot path.

A gateway process talks to Redis three ways, each with its own client (its own pool):
- hot: key-cache lookups and fills, rate limits, cooldown announcements. Every call is
  bounded by TOKENBYTE_REDIS_TIMEOUT (connect, handshake and answer together), is never
  retried, and goes through a circuit breaker: after a few consecutive failures or timeouts
  the breaker opens and calls fail at once, so requests take their documented fallback
  (rate limits per process, keys from memory and the database) at normal latency instead of
  each waiting for a Redis that does not answer. After a cool-off one probe call decides.
- background: metering's stream writes and readiness pings, with a longer timeout.
- listener: pub/sub subscriptions, whose reads block for as long as nothing is announced.
  `subscribe_forever` pings on a quiet subscription and resubscribes when no answer comes, so
  a stalled Redis is noticed there too.
"""

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis
from django.conf import settings
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.driver_info import DriverInfo
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry as SyncRetry

from tokenbyte.metrics import (
    REDIS_BREAKER_OPENINGS,
    REDIS_BREAKER_STATE,
    REDIS_FALLBACKS,
    REDIS_TIMEOUTS,
)

logger = logging.getLogger(__name__)
# Its own logger: the lines an operator alerts on (one when Redis stops answering, one when
# it answers again).
breaker_logger = logging.getLogger(f"{__name__}.breaker")

T = TypeVar("T")

# The gateway's usage events (proxy/gateway/pipeline/metering.py appends them), read by billing's
# consumer group (billing/tasks.py), which alone trims it, below what it has acknowledged.
USAGE_STREAM = "tb:usage"
USAGE_GROUP = "billing"
# Stored bodies of the accounts that keep them (proxy/gateway/bodylog.py appends them), read by
# billing's consumer group (billing/body_log.py), which deletes what it has stored. Bodies are
# not money: appends also trim it to about BODIES_STREAM_MAXLEN entries (up to twice
# TOKENBYTE_BODY_LOG_MAX_BYTES each), so with no worker draining it Redis's memory stays
# bounded and the oldest bodies are lost, never a charge.
BODIES_STREAM = "tb:usage:bodies"
BODIES_GROUP = "billing"
BODIES_STREAM_MAXLEN = 10_000

# What a call that got no usable answer raises: redis-py's errors (its TimeoutError is one),
# and OSError, which covers the builtin TimeoutError that asyncio.timeout raises.
REDIS_FAILURES = (RedisError, OSError)
# Consecutive failed hot-path calls that open the breaker.
BREAKER_FAILURES = 3
# Metering batches and readiness pings may wait this long (seconds).
BACKGROUND_TIMEOUT = 5.0
# Calls that would rather wait a little than fall back (reservations of money): a loaded event
# loop must not trip them, a hung Redis must not hold a request long.
PATIENT_TIMEOUT = 1.0
# A subscription quiet this long is pinged; one that stays quiet as long again is dead.
LISTENER_PING_SECONDS = 5.0
RESUBSCRIBE_MAX_DELAY = 5.0


def describe(error: BaseException) -> str:
    """An exception for a log line: its text, or its type when it has none (TimeoutError())."""
    return str(error) or type(error).__name__


class RedisUnavailable(RedisError):
    """A hot-path call got no answer (failed, timed out, or skipped): use the fallback."""


class BreakerState(enum.IntEnum):
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class Breaker:
    """Closed → open after consecutive failures; half-open after a cool-off, one probe decides.

    It only logs on opening and on closing, never per call: the metrics count the calls.
    """

    def __init__(
        self,
        *,
        cool_off: float,
        failures: int = BREAKER_FAILURES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = BreakerState.CLOSED
        self._cool_off = cool_off
        self._threshold = failures
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._probe_at = 0.0
        REDIS_BREAKER_STATE.set(self.state)

    def allow(self) -> bool:
        """Whether a call may go to Redis now (False: use the fallback at once)."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.HALF_OPEN or self._clock() < self._probe_at:
            return False  # a probe is out, or the cool-off is not over
        self._set(BreakerState.HALF_OPEN)
        return True  # this call is the probe

    def succeeded(self) -> None:
        self._failures = 0
        if self.state is not BreakerState.CLOSED:
            breaker_logger.warning(
                "Redis answers again after %.1f s: rate limits and keys are shared through it "
                "again",
                self._clock() - self._opened_at,
            )
            self._set(BreakerState.CLOSED)

    def failed(self, error: BaseException) -> None:
        self._failures += 1
        if self.state is BreakerState.HALF_OPEN:
            breaker_logger.info(
                "Redis still does not answer (%s); next probe in %g s",
                describe(error),
                self._cool_off,
            )
            self._open()
        elif self.state is BreakerState.CLOSED and self._failures >= self._threshold:
            REDIS_BREAKER_OPENINGS.inc()
            breaker_logger.warning(
                "Redis failed %d calls in a row (last: %s): the gateway skips it, probing "
                "every %g s; meanwhile rate limits are counted per process and keys come from "
                "memory and the database",
                self._failures,
                describe(error),
                self._cool_off,
            )
            self._opened_at = self._clock()
            self._open()

    def abandoned(self) -> None:
        """A call ended without an answer or a failure (cancelled): free the probe's place."""
        if self.state is BreakerState.HALF_OPEN:
            self._probe_at = self._clock()
            self._set(BreakerState.OPEN)

    def _open(self) -> None:
        self._probe_at = self._clock() + self._cool_off
        self._set(BreakerState.OPEN)

    def _set(self, state: BreakerState) -> None:
        self.state = state
        REDIS_BREAKER_STATE.set(state)


def _client(url: str, role: str, timeout: float) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        # redis-py retries a failed command 10 times with backoff by default: on the hot path
        # that multiplies a stall; our callers have fallbacks (and metering its own retries).
        retry=Retry(NoBackoff(), 0),
        # RESP2: connecting takes one round trip (RESP3 sends HELLO and waits first).
        protocol=2,
        # CLIENT LIST shows each connection's role (lib-name "redis-py(tokenbyte-hot_v1)").
        driver_info=DriverInfo().add_upstream_driver(f"tokenbyte-{role}", "1"),
    )


class GatewayRedis:
    """One gateway process's Redis: the hot, background and listener clients, and the breaker.

    Nothing connects until first use.
    """

    def __init__(
        self, url: str, *, timeout: float | None = None, cool_off: float | None = None
    ) -> None:
        self.timeout = settings.TOKENBYTE_REDIS_TIMEOUT if timeout is None else timeout
        self.hot = _client(url, "hot", self.timeout)
        self.background = _client(url, "background", BACKGROUND_TIMEOUT)
        # Its socket timeout bounds connecting, the handshake and the subscribe itself; the
        # subscription's reads wait as long as they must (subscribe_forever pings).
        self.listener = _client(url, "listener", BACKGROUND_TIMEOUT)
        self.breaker = Breaker(
            cool_off=(settings.TOKENBYTE_REDIS_BREAKER_SECONDS if cool_off is None else cool_off)
        )
        # Pub/sub spans every database of a server: channel names carry the db number.
        self.db = int(self.hot.connection_pool.connection_kwargs.get("db", 0) or 0)

    async def call(
        self,
        operation: str,
        command: Callable[[aioredis.Redis], Awaitable[T]],
        *,
        patient: bool = False,
        callers: int = 1,
    ) -> T:
        """`command(hot_client)` within the timeout, through the breaker.

        Raises RedisUnavailable when the caller must use its fallback; `operation` names the
        call in the metrics. `patient` calls (reservations of money, whose fallback is weaker
        than waiting a little) run on the background client, with its longer timeout.
        `callers`: how many requests this one call serves (coalesced calls), each of which
        takes its fallback when it fails.
        """
        if not self.breaker.allow():
            REDIS_FALLBACKS.labels(operation).inc(callers)
            raise RedisUnavailable(f"{operation} skipped: Redis is not answering")
        try:
            async with asyncio.timeout(PATIENT_TIMEOUT if patient else self.timeout):
                result = await command(self.background if patient else self.hot)
        except ResponseError as exc:  # Redis answered, with an error: not an outage
            self.breaker.succeeded()
            REDIS_FALLBACKS.labels(operation).inc(callers)
            logger.error("Redis refused %s: %s", operation, exc)
            raise RedisUnavailable(f"{operation}: {exc}") from exc
        except REDIS_FAILURES as exc:
            if isinstance(exc, TimeoutError | RedisTimeoutError):
                REDIS_TIMEOUTS.labels(operation).inc()
            self.breaker.failed(exc)
            REDIS_FALLBACKS.labels(operation).inc(callers)
            raise RedisUnavailable(f"{operation}: {describe(exc)}") from exc
        except BaseException:
            self.breaker.abandoned()
            raise
        self.breaker.succeeded()
        return result

    async def ping(self) -> bool:
        """Whether Redis answers now (for readiness probes; not through the breaker)."""
        return bool(await self.background.ping())

    async def aclose(self) -> None:
        for client in (self.hot, self.background, self.listener):
            await client.aclose()

    async def __aenter__(self) -> "GatewayRedis":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def subscribe_forever(
    client: aioredis.Redis,
    channel: str,
    on_message: Callable[[dict[str, Any]], None],
    *,
    name: str,
) -> None:
    """Deliver the channel's messages (and each "subscribe" confirmation) until cancelled.

    A lost or silent subscription is retried with backoff; a confirmation follows every
    (re)subscription, so `on_message` learns when announcements may have been missed.
    """
    loop = asyncio.get_running_loop()
    lost_at: float | None = None
    delay = 0.25
    while True:
        try:
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(channel)
                async for message in _live_messages(pubsub):
                    if message["type"] == "subscribe":
                        if lost_at is not None:
                            logger.warning(
                                "%s: subscribed to Redis again after %.1f s",
                                name,
                                loop.time() - lost_at,
                            )
                        lost_at, delay = None, 0.25
                    try:
                        on_message(message)
                    except Exception:  # one bad message must not cost the subscription
                        logger.exception("%s: could not handle a message", name)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never give up: without the subscription, news arrive late
            if lost_at is None:
                lost_at = loop.time()
                logger.warning(
                    "%s: lost its Redis subscription (%s); retrying", name, describe(exc)
                )
        await asyncio.sleep(delay)
        delay = min(delay * 2, RESUBSCRIBE_MAX_DELAY)


async def _live_messages(pubsub: Any) -> AsyncIterator[dict[str, Any]]:
    # redis-py's own health check sends PINGs but never notices a missing answer.
    awaiting_pong = False
    while True:
        message = await pubsub.get_message(timeout=LISTENER_PING_SECONDS)
        if message is not None:
            awaiting_pong = False
            if message["type"] != "pong":
                yield message
            continue
        if awaiting_pong:
            raise redis.ConnectionError(f"no answer to PING in {LISTENER_PING_SECONDS:g} s")
        await pubsub.ping()
        awaiting_pong = True


@contextlib.contextmanager
def sync_client(url: str, *, timeout: float) -> Iterator[redis.Redis]:
    """A short-lived synchronous client (console writers): bounded by `timeout`, no retries."""
    client = redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=SyncRetry(NoBackoff(), 0)
    )
    try:
        yield client
    finally:
        client.close()
