"""Body logging's way out of a gateway process: captured bodies (pipeline/bodies.py) queued
without blocking, then shipped in batches by a task of their own, never in a request's way.

With Redis they go to a stream of their own (tokenbyte.redis BODIES_STREAM, trimmed on append
to about BODIES_STREAM_MAXLEN entries), which billing's drain stores (billing/body_log.py); in
embedded mode, and while Redis is away, this process stores them itself, on a thread and
database connection of its own. Embedded mode has no Celery beat, so this process also deletes
bodies past TOKENBYTE_BODY_RETENTION_DAYS there, every PRUNE_SECONDS.

Bodies are not money: nobody waits for them to be durable, a batch that neither Redis nor the
database takes is dropped (and logged), and so are the oldest past QUEUE_LIMIT. Usage events,
which are money, travel apart (pipeline/metering.py) and never wait behind bodies.
"""

import asyncio
import collections
import contextlib
import logging
import math
import time
from typing import Any

from billing.bodies import CapturedBodies
from proxy.gateway.db import PollingThread
from proxy.gateway.stores import BodyStore
from tokenbyte.redis import (
    BODIES_STREAM,
    BODIES_STREAM_MAXLEN,
    BreakerState,
    GatewayRedis,
    RedisUnavailable,
)

logger = logging.getLogger(__name__)

BATCH_SIZE = 100
QUEUE_LIMIT = 5_000  # captured bodies waiting (up to 2 x TOKENBYTE_BODY_LOG_MAX_BYTES each)
PRUNE_SECONDS = 3600.0
STOP_SECONDS = 3.0
DROP_LOG_SECONDS = 10.0


class BodyLog:
    def __init__(self, redis: GatewayRedis | None, store: BodyStore) -> None:
        self._redis = redis
        self._store = store
        self._queue: collections.deque[CapturedBodies] = collections.deque()
        self._wake = asyncio.Event()
        self._thread = PollingThread("body-log")
        self._task: asyncio.Task[None] | None = None
        self._pruned_at = -math.inf
        self._dropped = 0
        self._dropped_logged_at = -math.inf

    @property
    def backlog(self) -> int:
        return len(self._queue)

    def add(self, bodies: CapturedBodies) -> None:
        """Queue one call's bodies (from the request path: never blocks)."""
        self._queue.append(bodies)
        if len(self._queue) > QUEUE_LIMIT:
            self._queue.popleft()  # the oldest: whatever holds them up has held it longest
            self._lost(1, "the queue is full")
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._ship_forever(), name="body-log")

    async def stop(self) -> None:
        """Ship what is queued for at most STOP_SECONDS, then stop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_SECONDS):
                while self._queue:
                    await self._ship(self._take())
        if self._queue:
            self._lost(len(self._queue), "the process stopped")
            self._queue.clear()
        await self._thread.close()

    def _take(self) -> list[CapturedBodies]:
        count = min(len(self._queue), BATCH_SIZE)
        return [self._queue.popleft() for _ in range(count)]

    async def _ship_forever(self) -> None:
        while True:
            if self._redis is None and time.monotonic() - self._pruned_at >= PRUNE_SECONDS:
                await self._prune()
            if not self._queue:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(PRUNE_SECONDS):
                        await self._wake.wait()
                continue
            await self._ship(self._take())

    async def _ship(self, batch: list[CapturedBodies]) -> None:
        redis = self._redis
        if redis is not None and redis.breaker.state is not BreakerState.OPEN:

            async def append(client: Any) -> None:
                async with client.pipeline(transaction=False) as pipe:
                    for bodies in batch:
                        pipe.xadd(
                            BODIES_STREAM,
                            {"bodies": bodies.to_json()},
                            maxlen=BODIES_STREAM_MAXLEN,
                            approximate=True,
                        )
                    await pipe.execute()

            try:
                await redis.call("bodies", append, patient=True, callers=0)
                return
            except RedisUnavailable:
                pass  # this process stores them itself
        try:
            await self._thread.run(self._store.store, batch)
        except Exception as exc:
            self._lost(len(batch), f"the database refused them: {type(exc).__name__}: {exc}")

    async def _prune(self) -> None:
        self._pruned_at = time.monotonic()
        try:
            deleted = await self._thread.run(self._store.prune)
        except Exception as exc:  # tried again in an hour
            logger.warning(
                "deleting stored bodies and responses past their retention failed: %s", exc
            )
            return
        if deleted:
            logger.info("deleted %d stored bodies and responses past their retention", deleted)

    def _lost(self, count: int, why: str) -> None:
        self._dropped += count
        now = time.monotonic()
        if now - self._dropped_logged_at >= DROP_LOG_SECONDS:
            self._dropped_logged_at = now
            logger.warning(
                "stored bodies of %d calls lost (%s); %d so far", count, why, self._dropped
            )
