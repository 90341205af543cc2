"""Reservations in the database, taken while Redis is away (billing/holds.py decides).

A process cut off from Redis cannot see the other processes' holds, so it holds in the database
instead: one short transaction per call under the account's balance row lock, on a few threads
of their own. Each hold is renewed while it stands (a dead process's expire) and released once
the call's charge is recorded, or has reached Redis (billing records it from there).
"""

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

from django.db import Error as DatabaseError

from proxy.gateway.db import DatabaseLane, LaneFull, PollingThread
from proxy.gateway.errors import ServiceUnavailable
from proxy.gateway.stores import HoldStore

logger = logging.getLogger(__name__)

THREADS = 4
BACKLOG = 256
BUSY_MESSAGE = "Too many requests wait for their cost to be reserved; retry in a moment."
DOWN_MESSAGE = (
    "This request's cost cannot be reserved now (the gateway reaches neither Redis nor its "
    "database); retry in a moment."
)


class DatabaseHolds:
    def __init__(self, store: HoldStore, *, postpaid: bool, hold_seconds: int) -> None:
        self._store = store
        self._postpaid = postpaid
        self._seconds = hold_seconds
        self._lane = DatabaseLane("holds", threads=THREADS, backlog=BACKLOG)
        self._upkeep = PollingThread("holds-upkeep")
        self._held: dict[str, int] = {}  # hold id -> account id, renewed until released
        self._releasing: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.taken = 0

    @property
    def calls(self) -> int:
        return len(self._held)

    def start(self) -> None:
        self._task = asyncio.create_task(self._upkeep_forever(), name="database-holds")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(DatabaseError):
            await self._release_now()  # what is left expires by itself
        await self._lane.close()
        await self._upkeep.close()

    async def reserve(
        self,
        hold_id: str,
        account_id: int,
        key_id: int,
        budget: Decimal | None,
        window: str | None,
        amount: Decimal,
    ) -> tuple[bool, Decimal, Decimal | None]:
        """(held, balance left for the call, budget left or None); 503 when it cannot ask."""
        try:
            answer = await self._lane.run(
                self._store.take,
                hold_id,
                account_id,
                key_id,
                budget,
                window,
                amount,
                self._postpaid,
                datetime.now(UTC),
                self._seconds,
            )
        except LaneFull:
            raise ServiceUnavailable(BUSY_MESSAGE, headers=[(b"retry-after", b"1")]) from None
        except DatabaseError as exc:
            logger.warning("holding %s in the database failed: %s", hold_id, exc)
            raise ServiceUnavailable(DOWN_MESSAGE, headers=[(b"retry-after", b"1")]) from None
        if answer[0]:
            self._held[hold_id] = account_id
            self.taken += 1
        return answer

    def release(self, hold_ids: Iterable[str]) -> None:
        """These calls' charges are recorded (or in Redis): their holds go, soon, in one go."""
        for hold_id in hold_ids:
            if self._held.pop(hold_id, None) is not None:
                self._releasing.add(hold_id)
        if self._releasing:
            self._wake.set()

    async def _upkeep_forever(self) -> None:
        renew_every = self._seconds / 3
        loop = asyncio.get_running_loop()
        renew_at = loop.time() + renew_every
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(renew_at):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._release_now()
                if loop.time() >= renew_at:
                    renew_at = loop.time() + renew_every
                    if self._held:
                        ids = list(self._held)
                        now = datetime.now(UTC)
                        await self._upkeep.run(self._store.renew, ids, now, self._seconds)
            except DatabaseError as exc:  # tried again next round; holds last their seconds
                logger.warning("keeping %d database holds failed: %s", len(self._held), exc)
                await asyncio.sleep(1)

    async def _release_now(self) -> None:
        if not self._releasing:
            return
        ids, self._releasing = list(self._releasing), set()
        try:
            await self._upkeep.run(self._store.release, ids)
        except BaseException:
            self._releasing.update(ids)
            raise
