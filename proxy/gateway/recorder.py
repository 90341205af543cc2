"""Embedded mode (no REDIS_URL): usage events recorded and charged in this process.

With Redis, billing's Celery consumer records what the gateway ships to the usage stream. Without
it, this recorder does the same work here, through the same service (the store's `record`:
billing.services.usage_events_record, one transaction per batch, idempotent on the event id),
on a thread and database connection of its own, never the key lookups' or asgiref's.

Group commit: events wait while a write runs and make the next batch, all of them (up to
BATCH_SIZE), at once; there is no linger, so a lone request waits for one write of one event.
A batch that fails is retried with backoff (0.05 s doubling to 5 s), whole, with what arrived
meanwhile: safe after an unknown outcome (a commit whose answer was lost), since events
recorded before are skipped. Each event's future resolves once its batch has committed
(metering hands it to the request: a served answer's last bytes wait for it, for a bounded
while), and `on_recorded` hears of each committed batch (the purse, proxy/gateway/purse.py).
`stop` writes what is left for at most STOP_SECONDS, then logs by count and id what it could not.

One event the database refuses every time (a poison event) must not hold back every charge
behind it: after ISOLATE_AFTER failures in a row the batches are halved until a lone event
fails; it is set aside while the others are written, and when they commit (so the database
works) it is logged whole at ERROR, for an operator to replay, and dropped.
"""

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

from billing.events import UsageEvent
from billing.reservations import RecordedBatch
from proxy.gateway.db import PollingThread

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000
BACKLOG_LIMIT = 100_000  # events waiting for the database; beyond it the oldest are dropped
RETRY_FIRST_SECONDS = 0.05
RETRY_MAX_SECONDS = 5.0
STOP_SECONDS = 5.0
ISOLATE_AFTER = 3  # failures in a row before batches are halved to find a poison event
DROP_LOG_SECONDS = 10.0

# The store's writer: a batch of events -> what it changed (on the recorder's thread).
RecordBatch = Callable[[Sequence[UsageEvent]], RecordedBatch]


class Recorder:
    def __init__(
        self,
        record: RecordBatch,
        *,
        committed: Callable[[Sequence[UsageEvent], RecordedBatch], None],
        dropped: Callable[[Sequence[UsageEvent]], None],
    ) -> None:
        self._record = record
        self._committed = committed
        self._on_dropped = dropped
        self._pending: collections.deque[UsageEvent] = collections.deque()
        self._wake = asyncio.Event()
        self._thread = PollingThread("usage-recorder")
        self._task: asyncio.Task[None] | None = None
        self._in_flight: list[UsageEvent] = []
        self._dropped = 0
        self._dropped_logged_at = -float("inf")
        self._failures = 0
        self._limit = BATCH_SIZE  # the next batch's size: halved while writes keep failing
        self._suspect: UsageEvent | None = None  # a lone event that failed, set aside

    def add(self, batch: Sequence[UsageEvent]) -> None:
        """Queue events for the next write (from the metering task; never blocks)."""
        self._pending.extend(batch)
        overflow = len(self._pending) - BACKLOG_LIMIT
        for _ in range(max(0, overflow)):
            dropped = self._pending.popleft()  # oldest first: the database has been gone longest
            self._dropped += 1
            logger.error(
                "usage backlog full; dropped event %s (%s)", dropped.event_id, dropped.cost
            )
        self._wake.set()

    @property
    def backlog(self) -> int:
        """Events not yet committed (waiting, or in the write under way)."""
        return len(self._pending) + len(self._in_flight)

    def start(self) -> None:
        self._task = asyncio.create_task(self._record_forever(), name="usage-recorder")

    async def stop(self) -> None:
        """Write what is queued for at most STOP_SECONDS; log what could not be written."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        deadline = time.monotonic() + STOP_SECONDS
        # A write cancelled above runs on in its thread: its events are retried (idempotent).
        self._pending.extendleft(reversed(self._in_flight))
        self._in_flight = []
        if self._suspect is not None:
            self._pending.appendleft(self._suspect)
            self._suspect = None
        try:
            async with asyncio.timeout_at(asyncio.get_running_loop().time() + STOP_SECONDS):
                while self._pending:
                    if not await self._write_once():
                        await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        except TimeoutError:
            pass
        left = [*self._in_flight, *self._pending]
        if left:
            logger.error(
                "stopping: %d usage events not recorded (the database did not take them within "
                "%.0f s; any in a write still under way may yet commit): %s",
                len(left),
                STOP_SECONDS,
                " ".join(event.event_id for event in left),
            )
        await self._thread.close()

    def _drop_poison(self, event: UsageEvent) -> None:
        logger.error(
            "usage event %s cannot be recorded (the database takes the others); dropped, "
            "not charged: %s",
            event.event_id,
            event.to_json().decode(),
        )
        self._on_dropped([event])

    async def _record_forever(self) -> None:
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            if await self._write_once():
                continue
            delay = min(RETRY_MAX_SECONDS, RETRY_FIRST_SECONDS * 2 ** (self._failures - 1))
            await asyncio.sleep(delay)

    async def _write_once(self) -> bool:
        """Write the waiting events (up to BATCH_SIZE) in one transaction; False if it failed
        (they stay first in line)."""
        count = min(len(self._pending), self._limit)
        batch = self._in_flight = [self._pending.popleft() for _ in range(count)]
        try:
            recorded = await self._thread.run(self._record, batch)
        except Exception as exc:
            self._in_flight = []
            self._failures += 1
            if self._suspect is not None:  # the others fail too: the database, not the event
                batch.insert(0, self._suspect)
                self._suspect = None
            if self._failures >= ISOLATE_AFTER and len(batch) == 1 and self._pending:
                self._suspect = batch.pop()  # try the others without it
            elif self._failures >= ISOLATE_AFTER:
                self._limit = max(1, len(batch) // 2)
            self._pending.extendleft(reversed(batch))
            if self._failures == 1 or self._failures % 20 == 0:
                logger.warning(
                    "recording %d usage events failed (%s: %s); %d wait, retrying",
                    len(batch),
                    type(exc).__name__,
                    exc,
                    len(self._pending),
                    exc_info=self._failures == 1,
                )
            return False
        self._in_flight = []
        if self._suspect is not None:
            self._drop_poison(self._suspect)
            self._suspect = None
        self._limit = BATCH_SIZE
        if self._failures:
            logger.warning("usage events are recorded again (%d waiting)", len(self._pending))
            self._failures = 0
        try:
            self._committed(batch, recorded)
        except Exception:  # the write stands; a listener's failure must not undo it
            logger.exception("after recording %d usage events", len(batch))
        return True
