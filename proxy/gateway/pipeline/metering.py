"""Usage events: one per request that passed authentication, handed off without blocking.

The gateway never waits for the database. `Metering.emit` is synchronous and O(1); a background
task hands events in batches to in-process consumers (the rate limiter's token counts, tests),
and another ships them to Redis when REDIS_URL is set (a stream, which billing's consumer group
drains and charges: billing/tasks.py), retrying while Redis is slow. In embedded mode, and
while Redis is away (its breaker open), the runtime's recorder (proxy/gateway/recorder.py)
records and charges them in this process: slower, but nothing waits for Redis to come back,
and nothing is lost when the process stops meanwhile. Either way `emit` returns a future
resolved once the event is durable: in Redis, or committed to the database.
"""

import asyncio
import collections
import contextlib
import itertools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from billing.events import UsageEvent
from tokenbyte.metrics import REDIS_FALLBACKS, USAGE_NOT_DURABLE
from tokenbyte.redis import REDIS_FAILURES, USAGE_STREAM, BreakerState, GatewayRedis, describe

logger = logging.getLogger(__name__)

BATCH_SIZE = 256
# An answer's last bytes wait at most this long for its usage event to be in Redis (group
# commit: events shipping together share one pipelined write); past it they go, the event is
# retried, and tokenbyte_usage_not_durable counts it.
DURABLE_WAIT_SECONDS = 1.0
QUEUE_LIMIT = 100_000  # events waiting for the consumers; as many again waiting for Redis
RETRY_DELAYS = (0.2, 1.0, 5.0)  # between failed shipments to Redis, then every 5 s
STOP_SHIP_SECONDS = 5.0
DROP_LOG_SECONDS = 10.0

# Consumers run in order on the metering task; an async one is awaited before the next runs.
Consumer = Callable[[list["UsageEvent"]], Awaitable[None] | None]


class Metering:
    def __init__(self, redis: GatewayRedis | None) -> None:
        self._redis = redis
        self._queue: asyncio.Queue[UsageEvent] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self._consumers: list[Consumer] = []
        self._task: asyncio.Task[None] | None = None
        # Events the consumers have seen that Redis has not taken yet, oldest first. Shipping
        # them is a task of its own: a slow Redis delays neither the consumers (the rate
        # limiter counts tokens there) nor the next batch.
        self._outbox: collections.deque[UsageEvent] = collections.deque()
        self._outbox_filled = asyncio.Event()
        self._shipper: asyncio.Task[None] | None = None
        self._dropped = 0
        self._dropped_logged_at = -math.inf
        # Queued ahead of a batch's XADDs in the same pipeline, and told when it got through
        # (the purse settles each call's reservation with its charge: proxy/gateway/purse.py).
        self.before_ship: Callable[[Any, list[UsageEvent]], Awaitable[None]] | None = None
        self.after_ship: Callable[[list[UsageEvent]], None] | None = None
        self.on_ship_error: Callable[[BaseException], Awaitable[None]] | None = None
        # Takes each batch to record it (proxy/gateway/recorder.py) in embedded mode, and with
        # Redis while it is away; calls `durable` once it has committed.
        self.recorder: Callable[[list[UsageEvent]], None] | None = None
        # Told of the batches recorded here instead of shipped (their Redis holds are owed).
        self._recorded_here = 0
        # Event id -> resolved True once Redis or the database has it, False when it could not
        # wait longer; oldest first.
        self._durable: dict[str, asyncio.Future[bool]] = {}
        self._durable_since: collections.deque[tuple[float, str]] = collections.deque()
        self._expirer: asyncio.Task[None] | None = None

    @property
    def backlog(self) -> int:
        """Events queued for the consumers or waiting for Redis."""
        return self._queue.qsize() + len(self._outbox)

    def add_consumer(self, consumer: Consumer) -> None:
        self._consumers.append(consumer)

    def remove_consumer(self, consumer: Consumer) -> None:
        self._consumers.remove(consumer)

    def emit(self, event: UsageEvent) -> "asyncio.Future[bool] | None":
        """Queue the event; a future resolved True once it is durable (in Redis, or recorded
        in embedded mode), False after DURABLE_WAIT_SECONDS (the answer goes; the event is
        still retried)."""
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:  # a wedged consumer must not wedge the gateway: say so loudly
            logger.error("usage queue full; dropped event %s (%s)", event.event_id, event.cost)
            return None
        if self._redis is None and self.recorder is None:
            return None
        if self.recorder is None and self._redis_away():
            # Redis is known to be away: the answer would only wait out DURABLE_WAIT_SECONDS.
            USAGE_NOT_DURABLE.inc()
            return None
        durable = self._durable[event.event_id] = asyncio.get_running_loop().create_future()
        self._durable_since.append((time.monotonic(), event.event_id))
        return durable

    async def _expire_forever(self) -> None:
        """Free the answers whose events could not reach Redis in time (one timer for all)."""
        while True:
            await asyncio.sleep(DURABLE_WAIT_SECONDS / 4)
            deadline = time.monotonic() - DURABLE_WAIT_SECONDS
            while self._durable_since and self._durable_since[0][0] < deadline:
                _, event_id = self._durable_since.popleft()
                durable = self._durable.pop(event_id, None)
                if durable is not None and not durable.done():
                    USAGE_NOT_DURABLE.inc()
                    durable.set_result(False)

    def start(self) -> None:
        self._task = asyncio.create_task(self._deliver_forever(), name="metering")
        if self._redis is not None:
            self._shipper = asyncio.create_task(self._ship_forever(), name="metering-redis")
        if self._redis is not None or self.recorder is not None:
            self._expirer = asyncio.create_task(self._expire_forever(), name="metering-durable")

    async def stop(self) -> None:
        """Deliver what is queued, give Redis a last few seconds for it, then stop."""
        if self._task is None:
            return
        await self._drain()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if self._expirer is not None:
            self._expirer.cancel()
        if self._shipper is None:
            return
        self._shipper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._shipper
        if self.recorder is not None and self._redis_away():
            self._record_here(self._take_outbox())
            return
        try:
            async with asyncio.timeout(STOP_SHIP_SECONDS):
                while self._outbox:
                    await self._ship_batch()
        except REDIS_FAILURES as exc:  # the timeout's TimeoutError is an OSError
            if self.recorder is not None:
                logger.warning(
                    "%d usage events could not reach Redis before stopping (%s); this process "
                    "records them",
                    len(self._outbox),
                    describe(exc),
                )
                self._record_here(self._take_outbox())
                return
            logger.error(
                "%d usage events could not reach Redis before stopping (%s); they are lost",
                len(self._outbox),
                describe(exc),
            )

    async def _drain(self) -> None:
        while not self._queue.empty():
            await self._deliver(self._take_batch())

    def _take_batch(self) -> list[UsageEvent]:
        batch: list[UsageEvent] = []
        while len(batch) < BATCH_SIZE and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _deliver_forever(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first, *self._take_batch()]
            await self._deliver(batch)

    async def _deliver(self, batch: list[UsageEvent]) -> None:
        for consumer in list(self._consumers):
            try:
                result = consumer(batch)
                if result is not None:
                    await result
            except Exception:
                logger.exception("usage consumer %r failed", consumer)
        if self._redis is None:
            if self.recorder is not None:
                self.recorder(batch)
        elif self.recorder is not None and self._redis_away():
            self._record_here(batch)
        else:
            self._to_outbox(batch)

    def _redis_away(self) -> bool:
        return self._redis is not None and self._redis.breaker.state is BreakerState.OPEN

    def _record_here(self, batch: list[UsageEvent]) -> None:
        """Redis is away: this process records the batch (an event that reached Redis after
        all, its answer lost, is recorded once: recording skips event ids it has)."""
        if not batch or self.recorder is None:
            return
        if not self._recorded_here:
            logger.warning(
                "Redis is away: this process records its usage events in the database until "
                "it answers again"
            )
        self._recorded_here += len(batch)
        REDIS_FALLBACKS.labels("usage").inc(len(batch))
        self.recorder(batch)

    def _take_outbox(self) -> list[UsageEvent]:
        batch = list(self._outbox)
        self._outbox.clear()
        return batch

    def durable(self, batch: Sequence[UsageEvent]) -> None:
        """These events are durable now: their requests' last bytes may go."""
        for event in batch:
            future = self._durable.pop(event.event_id, None)
            if future is not None and not future.done():
                future.set_result(True)

    def forget(self, batch: Sequence[UsageEvent]) -> None:
        """These events will not be durable (dropped): nobody waits for them any longer."""
        for event in batch:
            future = self._durable.pop(event.event_id, None)
            if future is not None and not future.done():
                future.set_result(False)

    def _to_outbox(self, batch: list[UsageEvent]) -> None:
        overflow = len(self._outbox) + len(batch) - QUEUE_LIMIT
        for _ in range(max(0, overflow)):
            dropped = self._outbox.popleft()  # oldest first: Redis has been gone longest
            self._durable.pop(dropped.event_id, None)
            self._dropped += 1
        self._outbox.extend(batch)
        self._outbox_filled.set()
        now = time.monotonic()
        if self._dropped and now - self._dropped_logged_at >= DROP_LOG_SECONDS:
            self._dropped_logged_at = now
            logger.error("Redis took no usage events for long: %d dropped so far", self._dropped)

    async def _ship_forever(self) -> None:
        failures = 0
        while True:
            if not self._outbox:
                self._outbox_filled.clear()
                await self._outbox_filled.wait()
                continue
            if self.recorder is not None and self._redis_away():
                self._record_here(self._take_outbox())
                continue
            try:
                await self._ship_batch()
            except REDIS_FAILURES as exc:
                if self.on_ship_error is not None:
                    with contextlib.suppress(*REDIS_FAILURES):
                        await self.on_ship_error(exc.__cause__ or exc)
                if self.recorder is not None and self._redis_away():
                    failures = 0
                    continue  # recorded here from now on
                if not failures:
                    logger.warning(
                        "shipping usage events to Redis failed (%s); %d wait, retrying",
                        describe(exc),
                        len(self._outbox),
                    )
                await asyncio.sleep(RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)])
                failures += 1
                continue
            if failures or self._recorded_here:
                logger.warning(
                    "Redis takes usage events again (%d waiting, %d recorded here meanwhile)",
                    len(self._outbox),
                    self._recorded_here,
                )
                failures = self._recorded_here = 0

    async def _ship_batch(self) -> None:
        """XADD the oldest events; they leave the outbox only once Redis has them."""
        if self._redis is None:
            return
        batch = list(itertools.islice(self._outbox, BATCH_SIZE))

        async def send(client: Any) -> None:
            async with client.pipeline(transaction=False) as pipe:
                if self.before_ship is not None:
                    await self.before_ship(pipe, batch)
                for event in batch:
                    # No MAXLEN: trimming here could drop events not yet billed (the consumer
                    # trims, below what it acknowledged).
                    pipe.xadd(USAGE_STREAM, {"event": event.to_json()})
                await pipe.execute()

        # Through the breaker: shipments that fail tell the request path Redis is away (with
        # leases, requests may not call Redis themselves for long). The events that then
        # take the fallback are counted as they are recorded here.
        await self._redis.call("usage", send, patient=True, callers=0)
        if self.after_ship is not None:
            self.after_ship(batch)
        self.durable(batch)
        # Meanwhile others may have been appended, and the oldest dropped (overflow).
        shipped = {id(event) for event in batch}
        while self._outbox and id(self._outbox[0]) in shipped:
            self._outbox.popleft()
