"""Reservations: a call's worst case is held against its account's balance and its key's budget
before the upstream is called, and becomes its actual charge when its usage event ships.

With REDIS_URL the holds live in Redis (billing/reservations.py: one script decides, on every
gateway process's behalf, atomically), so no number of processes can together overdraw a
balance or overspend a budget: a call is held within its process's lease of the account's
money (proxy/gateway/leases.py) or, for keys with a budget and where no lease fits, on its
own. Mirrors of the balance and budget spend there are filled from
the database on demand (the store's `snapshot`), and kept by billing as it records charges.

Without Redis (embedded mode: one process) this process holds its calls' worst cases itself
against the database's balance and spend, read at most LOCAL_SNAPSHOT_SECONDS before. While
Redis is unreachable, the gateway processes hold in the database, together
(proxy/gateway/database_holds.py); the usage this process then records itself is owed to
Redis's mirrors, and pushed once it answers (proxy/gateway/owed.py).
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from billing.events import UsageEvent
from billing.money import charge_for
from billing.reservations import (
    MIRROR_TTL_SECONDS,
    RENEW,
    RESERVE,
    SETTLE,
    RecordedBatch,
    account_keys,
    from_nanos,
    mirrored,
    to_nanos,
)
from proxy.gateway.database_holds import DatabaseHolds
from proxy.gateway.leases import Leases
from proxy.gateway.local_holds import LocalHolds, SnapshotReader, Verdict
from proxy.gateway.owed import OwedPushes
from proxy.gateway.scripts import Coalesced, LuaScript, is_noscript
from tokenbyte.redis import GatewayRedis, RedisUnavailable

logger = logging.getLogger(__name__)


class Purse:
    def __init__(
        self,
        redis: GatewayRedis | None,
        read_snapshot: SnapshotReader,
        *,
        database: DatabaseHolds | None = None,
        postpaid: bool,
        hold_seconds: int,
        pending_seconds: int,
    ) -> None:
        self._redis = redis
        self._read = read_snapshot
        self._postpaid = postpaid
        self._hold_ms = hold_seconds * 1000
        self._pending_ms = pending_seconds * 1000
        self._settle, self._renew = LuaScript(SETTLE), LuaScript(RENEW)
        self._reserve = Coalesced(redis, LuaScript(RESERVE), "reserve") if redis else None
        # Holds in Redis whose calls are alive here: hold id -> account id (renewed, settled).
        self._live: dict[str, int] = {}
        self._local = LocalHolds(read_snapshot, postpaid=postpaid)
        self._renewer: asyncio.Task[None] | None = None
        self._owed = OwedPushes(redis, pushed=self._forget_live) if redis else None
        self._database = database  # with Redis: where calls are held while it is away
        self._leases = (
            Leases(
                redis,
                read_snapshot,
                postpaid=postpaid,
                hold_ms=self._hold_ms,
                pending_ms=self._pending_ms,
            )
            if redis
            else None
        )

    @property
    def calls_held(self) -> int:
        """Calls of this process holding a reservation, wherever it is kept."""
        held = len(self._live) + self._local.calls
        if self._leases is not None:
            held += self._leases.calls
        if self._database is not None:
            held += self._database.calls
        return held

    def start(self) -> None:
        if self._redis is not None:
            self._renewer = asyncio.create_task(self._renew_forever(), name="purse-renewer")
        if self._owed is not None:
            self._owed.start()
        if self._database is not None:
            self._database.start()
        if self._leases is not None:
            self._leases.start()

    async def stop(self) -> None:
        if self._leases is not None:
            await self._leases.stop()
        if self._owed is not None:
            await self._owed.stop()
        if self._database is not None:
            await self._database.stop()
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer

    async def reserve(
        self,
        hold_id: str,
        *,
        account_id: int,
        key_id: int,
        budget: Decimal | None,
        window: str | None,
        amount: Decimal,
    ) -> Verdict:
        """Hold `amount` for the call `hold_id`, or say what is left when it does not fit."""
        if self._redis is not None:
            try:
                if budget is None and self._leases is not None:
                    left = await self._leases.reserve(hold_id, account_id, amount)
                    if left is not None:
                        return Verdict(True, left, None)
                return await self._reserve_in_redis(
                    hold_id, account_id, key_id, budget, window, amount
                )
            except RedisUnavailable:
                pass  # counted and logged by the breaker
            if self._database is not None:
                held, available, left = await self._database.reserve(
                    hold_id, account_id, key_id, budget, window, amount
                )
                return Verdict(held, available, left)
        return await self._local.reserve(hold_id, account_id, key_id, budget, window, amount)

    async def _reserve_in_redis(
        self,
        hold_id: str,
        account_id: int,
        key_id: int,
        budget: Decimal | None,
        window: str | None,
        amount: Decimal,
    ) -> Verdict:
        reserve = self._reserve
        if reserve is None:
            raise RedisUnavailable("reserve: no Redis")
        keys = account_keys(account_id)
        redis_keys = [*keys.all, keys.spend(key_id, window or "none")]
        head = [
            hold_id,
            to_nanos(amount),
            key_id,
            "" if budget is None else to_nanos(budget),
            self._hold_ms,
            "1" if self._postpaid else "0",
        ]
        seeds: list[Any] = ["", "", "", "", ""]
        # Known before the answer: were this call cancelled while Redis holds for it, its
        # usage event still settles (drops) the hold.
        self._live[hold_id] = account_id
        for _ in range(2):
            try:
                raw: Any = await reserve(redis_keys, [*head, *seeds, MIRROR_TTL_SECONDS])
            except RedisUnavailable:
                self._live.pop(hold_id, None)
                raise
            if int(raw[0]) >= 0:
                held = int(raw[0]) == 1
                if not held:
                    self._live.pop(hold_id, None)
                left = None if budget is None else from_nanos(max(0, int(raw[2])))
                return Verdict(held, from_nanos(int(raw[1])), left)
            # A mirror is missing (idle, or new): read the database once, and ask again.
            snapshot = await self._read(account_id, key_id, window)
            seeds = [
                mirrored(to_nanos(snapshot.balance)),
                mirrored(to_nanos(snapshot.credit_limit)),
                snapshot.version,
                mirrored(to_nanos(snapshot.spent)) if window else "",
                snapshot.version if window else "",
            ]
        self._live.pop(hold_id, None)
        raise RedisUnavailable("reserve: the mirrors did not take the database's figures")

    def release_local(self, hold_id: str) -> None:
        """A call held in this process (no Redis) is over: its hold goes."""
        self._local.release(hold_id)

    async def settle_into(self, pipe: Any, batch: list[UsageEvent]) -> None:
        """Queue, ahead of the batch's XADDs in `pipe`, each held call's charge in place of its
        worst case (so billing, which clears holds after recording, never meets an event whose
        hold is yet to be settled)."""
        if self._leases is not None:
            self._leases.settle_into(pipe, batch)
        for event in batch:
            if event.event_id not in self._live:
                continue
            keys = account_keys(self._live[event.event_id])
            charge = to_nanos(charge_for(event.cost))
            self._settle.queue(
                pipe,
                [keys.main, keys.holds, keys.expiry],
                [event.event_id, charge, self._pending_ms],
            )

    async def on_ship_error(self, exc: BaseException) -> None:
        """Shipping failed: after a Redis restart, the scripts must be loaded again."""
        if self._redis is not None and is_noscript(exc):
            await self._settle.load(self._redis.background)
            if self._leases is not None:
                await self._leases.load_scripts()

    def settled(self, batch: list[UsageEvent]) -> None:
        """The batch reached Redis: its holds are no longer this process's to renew, nor its
        local holds to keep (billing records them)."""
        if self._leases is not None:
            self._leases.settled(batch)
        for event in batch:
            self._live.pop(event.event_id, None)
            self._local.release(event.event_id)
        if self._database is not None:
            self._database.release(event.event_id for event in batch)

    def on_recorded(self, batch: RecordedBatch) -> None:
        """This process recorded a batch (embedded mode, or while Redis was away): its charges
        are in the database's figures now, and owed to Redis's."""
        self._local.recorded(batch)
        if self._leases is not None:
            self._leases.recorded_here([i for ids in batch.event_ids.values() for i in ids])
        if self._database is not None:
            self._database.release(i for ids in batch.event_ids.values() for i in ids)
        if self._owed is not None:
            self._owed.add(batch)

    def dropped(self, batch: Iterable[UsageEvent]) -> None:
        """These events will never be recorded: nothing of them stays held here."""
        for event in batch:
            self._local.release(event.event_id)
            if self._database is not None:
                self._database.release([event.event_id])

    def on_usage(self, batch: list[UsageEvent]) -> None:
        """Metering consumer: calls held in this process are over."""
        if self._leases is not None:
            self._leases.finished(batch)
        for event in batch:
            self._local.finished(event.event_id, charge_for(event.cost))

    def _forget_live(self, hold_ids: list[str]) -> None:
        """Redis has these calls' charges (pushed after this process recorded them)."""
        for hold_id in hold_ids:
            self._live.pop(hold_id, None)

    async def _renew_forever(self) -> None:
        redis = self._redis
        if redis is None:
            return
        interval = self._hold_ms / 3000
        while True:
            await asyncio.sleep(interval)
            by_account: dict[int, list[str]] = {}
            for hold_id, account_id in list(self._live.items()):
                by_account.setdefault(account_id, []).append(hold_id)
            if self._leases is not None:
                for account_id, ids in self._leases.live().items():
                    by_account.setdefault(account_id, []).extend(ids)
            if not by_account:
                continue
            asked_at = time.monotonic()
            try:
                async with redis.background.pipeline(transaction=False) as pipe:
                    for account_id, ids in by_account.items():
                        keys = account_keys(account_id)
                        self._renew.queue(
                            pipe, [keys.main, keys.holds, keys.expiry], [self._hold_ms, *ids]
                        )
                    await pipe.execute()
                if self._leases is not None:
                    self._leases.renewed(asked_at)
            except Exception as exc:  # the next round tries again; holds last hold_seconds
                logger.warning("renewing %d reservations failed: %s", len(self._live), exc)
                if is_noscript(exc):
                    with contextlib.suppress(Exception):
                        await self._renew.load(redis.background)
