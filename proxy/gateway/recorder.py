"""Embedded mode (no REDIS_URL): usage events recorded and charged in this process.

With Redis, billing's Celery consumer records what the gateway ships to the usage stream. Without
it, this recorder does the same work here, through the same service (the store's `record`:
billing.services.usage_events_record, one transaction per batch, idempotent on the event id),
on a thread and database connection of its own, never the key lookups' or asgiref's.

Two steps, when the store has them (`write`, then `fold`: billing/inbox.py): each event is first
written durably, one small row, and its answer may end; the events written are then recorded,
up to FOLD_SIZE at a time, where recording costs a third per event of what it costs in the
batches of a few that answers waiting for it would allow. Writing goes first whenever events
wait for it. What a stopped process left written is folded by the next recorder that looks
(at its start and every SWEEP_SECONDS, what is older than STALE_SECONDS).

Group commit: events wait while a write runs and make the next batch, all of them (up to
BATCH_SIZE), at once; there is no linger, so a lone request waits for one write of one event.
A batch that fails is retried with backoff (0.05 s doubling to 5 s), whole, with what arrived
meanwhile: safe after an unknown outcome (a commit whose answer was lost), since events
recorded before are skipped. Each event's future resolves once its batch has committed
(metering hands it to the request: a served answer's last bytes wait for it, for a bounded
while), and `on_recorded` hears of each committed batch (the purse, proxy/gateway/purse.py).
`stop` writes what is left for at most STOP_SECONDS, then logs by count and id what it could not.

Retention, in embedded mode (no Celery beat there; with Redis the beat task does it): given
`prune` (one bounded batch of old records deleted, how many), the recorder runs it every
PRUNE_SECONDS when nothing waits to be written, a batch at a time until a batch comes back
short, so a long backlog of old records never holds the writes behind it for more than one
statement.

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
from datetime import UTC, datetime, timedelta

from billing.events import UsageEvent
from billing.reservations import RecordedBatch
from proxy.gateway.db import PollingThread

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000
FOLD_SIZE = 250  # a fold holds the writes behind it: a few milliseconds at most
FOLD_LINGER_SECONDS = 0.25  # written events wait this long for others to fold with
SWEEP_SECONDS = 10.0
STALE_SECONDS = 30.0
BACKLOG_LIMIT = 100_000  # events waiting for the database; beyond it the oldest are dropped
RETRY_FIRST_SECONDS = 0.05
RETRY_MAX_SECONDS = 5.0
STOP_SECONDS = 5.0
ISOLATE_AFTER = 3  # failures in a row before batches are halved to find a poison event
DROP_LOG_SECONDS = 10.0
PRUNE_SECONDS = 3600.0

# The store's writer: a batch of events -> what it changed (on the recorder's thread).
RecordBatch = Callable[[Sequence[UsageEvent]], RecordedBatch]
# The two steps: write a batch durably; events written before a time (at most n).
WriteBatch = Callable[[Sequence[UsageEvent]], None]
LeftBehind = Callable[[datetime, int], list[UsageEvent]]
# Retention: delete one batch of records past it; (deleted, the batch's size).
PruneBatch = Callable[[], tuple[int, int]]


class Recorder:
    def __init__(
        self,
        record: RecordBatch,
        *,
        committed: Callable[[Sequence[UsageEvent], RecordedBatch], None],
        dropped: Callable[[Sequence[UsageEvent]], None],
        write: WriteBatch | None = None,
        written: Callable[[Sequence[UsageEvent]], None] | None = None,
        left: LeftBehind | None = None,
        prune: PruneBatch | None = None,
    ) -> None:
        """`record` records events (with `write`: events written before, and takes them out);
        `committed` hears of each recorded batch, `written` of each written one."""
        self._record = record
        self._committed = committed
        self._on_dropped = dropped
        self._write = write
        self._written = written
        self._left = left
        self._prune = prune
        self._pruned_at = -float("inf")  # when the last run through the old records ended
        self._pruned = 0  # deleted in the run under way
        self._pending: collections.deque[UsageEvent] = collections.deque()
        # With `write`: written, waiting to be recorded (the queue `record` takes from).
        self._written_events: collections.deque[UsageEvent] = collections.deque()
        self._written_since = 0.0  # when the oldest of them was written (monotonic)
        self._to_record = self._pending if write is None else self._written_events
        self._writing: list[UsageEvent] = []
        self._swept_at = -float("inf")
        self._swept_at_start = True
        self._poisoned: set[str] = set()
        self._started_at = datetime.now(UTC)
        self._wake = asyncio.Event()
        self._thread = PollingThread("usage-recorder")
        self._task: asyncio.Task[None] | None = None
        self._in_flight: list[UsageEvent] = []
        self._dropped = 0
        self._dropped_logged_at = -float("inf")
        self._failures = 0
        self._size = BATCH_SIZE if write is None else FOLD_SIZE
        self._limit = self._size  # the next batch's size: halved while writes keep failing
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
        """Events not yet recorded (waiting, or in the write under way)."""
        return (
            len(self._pending)
            + len(self._writing)
            + len(self._written_events)
            + len(self._in_flight)
        )

    @property
    def swept(self) -> bool:
        """Whether it looked for what stopped processes left (it does first thing)."""
        return not self._swept_at_start

    def start(self) -> None:
        self._task = asyncio.create_task(self._record_forever(), name="usage-recorder")

    async def stop(self) -> None:
        """Write and record what is queued for at most STOP_SECONDS; log what could not be."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        # A step cancelled above runs on in its thread: its events are taken again (each step
        # is idempotent).
        self._pending.extendleft(reversed(self._writing))
        self._writing = []
        self._to_record.extendleft(reversed(self._in_flight))
        self._in_flight = []
        if self._suspect is not None:
            self._to_record.appendleft(self._suspect)
            self._suspect = None
        try:
            async with asyncio.timeout(STOP_SECONDS):
                while self._pending or self._to_record:
                    if not await self._step():
                        await asyncio.sleep(0.2)
        except TimeoutError:
            pass
        unwritten = [*self._writing, *self._pending]
        if self._write is None:
            unwritten = [*self._in_flight, *self._pending]
        if unwritten:
            logger.error(
                "stopping: %d usage events not recorded (the database did not take them within "
                "%.0f s; any in a write still under way may yet commit): %s",
                len(unwritten),
                STOP_SECONDS,
                " ".join(event.event_id for event in unwritten),
            )
        if self._write is not None and (self._written_events or self._in_flight):
            logger.warning(
                "stopping: %d usage events written but not yet recorded; the next recorder "
                "records them",
                len(self._written_events) + len(self._in_flight),
            )
        await self._thread.close()

    def _drop_poison(self, event: UsageEvent) -> None:
        # Still written (with `write`): left there for an operator, and not taken up again.
        if len(self._poisoned) < BACKLOG_LIMIT:
            self._poisoned.add(event.event_id)
        logger.error(
            "usage event %s cannot be recorded (the database takes the others); dropped, "
            "not charged: %s",
            event.event_id,
            event.to_json().decode(),
        )
        self._on_dropped([event])

    async def _record_forever(self) -> None:
        while True:
            if self._left is not None and time.monotonic() - self._swept_at >= SWEEP_SECONDS:
                await self._sweep()
            if self._prune_due():
                await self._prune_once()
                continue
            wait = self._idle_for()
            if wait is not None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                continue
            if await self._step():
                continue
            delay = min(RETRY_MAX_SECONDS, RETRY_FIRST_SECONDS * 2 ** (self._failures - 1))
            await asyncio.sleep(delay)

    def _prune_due(self) -> bool:
        if self._prune is None or self._pending or self._failures:
            return False  # writes first; a database that fails them is not asked for more
        return time.monotonic() - self._pruned_at >= PRUNE_SECONDS

    async def _prune_once(self) -> None:
        """One batch of records past their retention; the run ends with a short batch."""
        prune = self._prune
        if prune is None:
            return
        try:
            deleted, batch_size = await self._thread.run(prune)
        except Exception as exc:  # tried again in PRUNE_SECONDS
            logger.warning("deleting usage records past their retention failed: %s", exc)
            deleted, batch_size = 0, 1
        self._pruned += deleted
        if deleted < batch_size:
            if self._pruned:
                logger.info("deleted %d usage records past their retention", self._pruned)
            self._pruned, self._pruned_at = 0, time.monotonic()

    def _idle_for(self) -> float | None:
        """How long to wait for more events before the next step (None: no wait)."""
        if self._pending:
            return None
        if not self._to_record:
            return SWEEP_SECONDS
        if self._write is None or len(self._to_record) >= FOLD_SIZE or self._failures:
            return None
        ripe_in = self._written_since + FOLD_LINGER_SECONDS - time.monotonic()
        return ripe_in if ripe_in > 0 else None

    async def _step(self) -> bool:
        """Write what waits to be written, else record what waits to be recorded."""
        if self._write is not None and self._pending:
            return await self._write_once()
        return await self._record_once()

    async def _sweep(self) -> None:
        """Take up what a stopped process left written (at start: whatever was written before)."""
        self._swept_at = time.monotonic()
        before = datetime.now(UTC) - timedelta(seconds=STALE_SECONDS)
        if self._swept_at_start:
            before, self._swept_at_start = self._started_at, False
        left = self._left
        if left is None:
            return
        try:
            events = await self._thread.run(left, before, BATCH_SIZE)
        except Exception as exc:  # tried again at the next sweep
            logger.warning("looking for usage events left unrecorded failed: %s", exc)
            return
        known = {e.event_id for e in (*self._written_events, *self._in_flight, *self._writing)}
        known |= self._poisoned
        events = [event for event in events if event.event_id not in known]
        if events:
            logger.warning("recording %d usage events a stopped process left", len(events))
            self._written_events.extend(events)

    async def _write_once(self) -> bool:
        """Write the waiting events (up to BATCH_SIZE) durably; False if it failed."""
        write = self._write
        if write is None:
            return False
        count = min(len(self._pending), BATCH_SIZE)
        batch = self._writing = [self._pending.popleft() for _ in range(count)]
        try:
            await self._thread.run(write, batch)
        except Exception as exc:
            self._writing = []
            self._pending.extendleft(reversed(batch))
            self._failed(len(batch), exc)
            return False
        self._writing = []
        if not self._written_events:
            self._written_since = time.monotonic()
        self._written_events.extend(batch)
        self._succeeded()
        if self._written is not None:
            try:
                self._written(batch)
            except Exception:  # the write stands; a listener's failure must not undo it
                logger.exception("after writing %d usage events", len(batch))
        return True

    def _failed(self, count: int, exc: Exception) -> None:
        self._failures += 1
        if self._failures == 1 or self._failures % 20 == 0:
            logger.warning(
                "recording %d usage events failed (%s: %s); %d wait, retrying",
                count,
                type(exc).__name__,
                exc,
                len(self._pending) + len(self._to_record),
                exc_info=self._failures == 1,
            )

    def _succeeded(self) -> None:
        if self._failures:
            logger.warning("usage events are recorded again (%d waiting)", self.backlog)
            self._failures = 0

    async def _record_once(self) -> bool:
        """Record the waiting events (up to the batch size) in one transaction; False if it
        failed (they stay first in line)."""
        queue = self._to_record
        count = min(len(queue), self._limit)
        batch = self._in_flight = [queue.popleft() for _ in range(count)]
        try:
            recorded = await self._thread.run(self._record, batch)
        except Exception as exc:
            self._in_flight = []
            if self._suspect is not None:  # the others fail too: the database, not the event
                batch.insert(0, self._suspect)
                self._suspect = None
            if self._failures + 1 >= ISOLATE_AFTER and len(batch) == 1 and queue:
                self._suspect = batch.pop()  # try the others without it
            elif self._failures + 1 >= ISOLATE_AFTER:
                self._limit = max(1, len(batch) // 2)
            queue.extendleft(reversed(batch))
            self._failed(len(batch), exc)
            return False
        self._in_flight = []
        if self._suspect is not None:
            self._drop_poison(self._suspect)
            self._suspect = None
        self._limit = self._size
        self._succeeded()
        try:
            self._committed(batch, recorded)
        except Exception:  # the write stands; a listener's failure must not undo it
            logger.exception("after recording %d usage events", len(batch))
        return True
