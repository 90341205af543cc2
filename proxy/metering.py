"""Usage events: one per request that reached an upstream, handed off without blocking.

The gateway never waits for PostgreSQL. `Metering.emit` is synchronous and O(1); a background
task ships events in batches to Redis (a stream, when REDIS_URL is set) and to in-process
consumers (the billing worker in embedded mode, live metrics, tests).
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

import orjson
import redis.asyncio as aioredis

from proxy.usage import Usage

logger = logging.getLogger(__name__)

USAGE_STREAM = "tb:usage"
USAGE_STREAM_MAXLEN = 1_000_000
BATCH_SIZE = 256
QUEUE_LIMIT = 100_000

# Consumers run in order on the metering task; an async one is awaited before the next runs.
Consumer = Callable[[list["UsageEvent"]], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class UsageEvent:
    event_id: str  # unique per event: the idempotency key of the usage record and its charge
    request_id: str  # what the client saw in x-request-id (a client may choose its own)
    endpoint: str  # "chat.completions", "embeddings", "messages"
    key_id: int | None
    account_id: int | None
    card_id: int
    model: str  # the card title
    provider: str
    upstream_model: str
    credential_id: int | None
    status: int  # HTTP status the client received
    error_code: str | None
    stream: bool
    usage: Usage
    cost: Decimal
    started_at: float  # epoch seconds
    latency_ms: float
    ttfb_ms: float | None  # to the first byte sent to the client
    attempts: int
    client_disconnected: bool = False
    upstream_request_id: str | None = None

    def to_json(self) -> bytes:
        data = asdict(self)
        data["cost"] = str(self.cost)
        return orjson.dumps(data)

    @classmethod
    def from_json(cls, raw: bytes | str) -> "UsageEvent":
        data = orjson.loads(raw)
        data["usage"] = Usage(**data["usage"])
        data["cost"] = Decimal(data["cost"])
        return cls(**data)


class Metering:
    def __init__(self, redis: aioredis.Redis | None) -> None:
        self._redis = redis
        self._queue: asyncio.Queue[UsageEvent] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self._consumers: list[Consumer] = []
        self._task: asyncio.Task[None] | None = None

    def add_consumer(self, consumer: Consumer) -> None:
        self._consumers.append(consumer)

    def remove_consumer(self, consumer: Consumer) -> None:
        self._consumers.remove(consumer)

    def emit(self, event: UsageEvent) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:  # a wedged Redis must not wedge the gateway: say so loudly
            logger.error("usage queue full; dropped event %s (%s)", event.event_id, event.cost)

    def start(self) -> None:
        self._task = asyncio.create_task(self._ship_forever(), name="metering")

    async def stop(self) -> None:
        """Ship what is queued, then stop."""
        if self._task is None:
            return
        await self._drain()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _drain(self) -> None:
        while not self._queue.empty():
            await self._ship(self._take_batch())

    def _take_batch(self) -> list[UsageEvent]:
        batch: list[UsageEvent] = []
        while len(batch) < BATCH_SIZE and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _ship_forever(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first, *self._take_batch()]
            await self._ship(batch)

    async def _ship(self, batch: list[UsageEvent]) -> None:
        if self._redis is not None:
            await self._ship_to_redis(batch)
        for consumer in list(self._consumers):
            try:
                result = consumer(batch)
                if result is not None:
                    await result
            except Exception:
                logger.exception("usage consumer %r failed", consumer)

    async def _ship_to_redis(self, batch: list[UsageEvent]) -> None:
        if self._redis is None:
            return
        for delay in (0.0, 0.2, 1.0, 5.0):
            await asyncio.sleep(delay)
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for event in batch:
                        pipe.xadd(
                            USAGE_STREAM,
                            {"event": event.to_json()},
                            maxlen=USAGE_STREAM_MAXLEN,
                            approximate=True,
                        )
                    await pipe.execute()
                return
            except Exception:
                logger.warning(
                    "shipping %d usage events to Redis failed", len(batch), exc_info=True
                )
        # Never lose money silently: keep them for the next batch.
        for event in batch:
            self.emit(event)
        await asyncio.sleep(5.0)


def events_from_stream(entries: list[tuple[Any, dict[bytes, bytes]]]) -> list[UsageEvent]:
    return [UsageEvent.from_json(fields[b"event"]) for _, fields in entries]
