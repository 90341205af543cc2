"""Leases: a gateway process holds money in Redis for many calls of an account at once.

A hold per call costs a round trip to Redis per request, and a script run there. Instead a
process asks for a lease (billing/reservations.py LEASE) — up to LEASE_CALLS of the asking
call's worst case, never more than an eighth of what is available — and holds its calls
against it here, in memory; while the lease covers them, requests never wait for Redis. When a
call ends its worst case gives way to its charge, which the usage shipment moves out of the
lease into a hold of its own (LEASE_SETTLE, one per account per batch, in the same pipeline as
the events), which billing drops once it has recorded the charge. So Redis's `held` counts
every call of the lease, at its worst case or its charge, from before its upstream call until
its charge is in the balance: the same invariant as holds per call, for every process.

What a lease does not use goes back after IDLE_SECONDS without a new call, so a balance is not
left waiting in an idle process. A lease is renewed like a live hold, and swept like one when
its process dies. Keys with a budget, and accounts whose balance no longer covers an eighth
of a lease, are held per call (the purse's exact path). A lease is used only while it surely
is in Redis (half its hold time after it was last grown or renewed), and not while Redis is
away (the breaker open: calls are held in the database then).
"""

import asyncio
import contextlib
import itertools
import logging
import os
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from billing.events import UsageEvent
from billing.money import charge_for
from billing.reservations import (
    LEASE,
    LEASE_RETURN,
    LEASE_SETTLE,
    MIRROR_TTL_SECONDS,
    account_keys,
    from_nanos,
    mirrored,
    to_nanos,
)
from proxy.gateway.scripts import LuaScript
from proxy.gateway.stores import Snapshot
from tokenbyte.metrics import REDIS_FALLBACKS
from tokenbyte.redis import REDIS_FAILURES, BreakerState, GatewayRedis, RedisUnavailable

logger = logging.getLogger(__name__)

LEASE_CALLS = 64
WHOLE = str(2**53)  # given back, more than any lease holds: the lease goes whole
IDLE_SECONDS = 2.0
UPKEEP_SECONDS = 0.5


@dataclass(slots=True)
class _Lease:
    lease_id: str
    amount: int = 0  # nanos Redis holds for it, as this process knows
    used: int = 0  # its calls' worst cases, and charges not yet moved out of it
    available: int | None = None  # what Redis last said was available beyond it
    last_call: float = 0.0
    give_back: int = 0  # charges recorded here while Redis was away: no longer the lease's
    growing: asyncio.Future[bool] | None = None
    # Until when Redis surely holds it (half its hold after it was last grown or renewed).
    valid_until: float = 0.0


@dataclass(slots=True)
class _Call:
    account_id: int
    lease: _Lease
    worst: int
    charge: int | None = None  # known once the call is over


@dataclass(slots=True)
class _Settling:
    account_id: int
    calls: list[tuple[str, int]] = field(default_factory=list)  # (event id, charge)


class Leases:
    def __init__(
        self,
        redis: GatewayRedis,
        read_snapshot: Any,
        *,
        postpaid: bool,
        hold_ms: int,
        pending_ms: int,
    ) -> None:
        self._redis = redis
        self._read = read_snapshot
        self._postpaid = postpaid
        self._hold_ms = hold_ms
        self._valid_seconds = hold_ms / 2000
        self._pending_ms = pending_ms
        self._lease, self._settle = LuaScript(LEASE), LuaScript(LEASE_SETTLE)
        self._return = LuaScript(LEASE_RETURN)
        self._leases: dict[int, _Lease] = {}
        self._calls: dict[str, _Call] = {}
        self._tag = f"{os.getpid()}-{time.monotonic_ns()}"
        self._ids = itertools.count()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._upkeep_forever(), name="leases")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(*REDIS_FAILURES):
            async with asyncio.timeout(1):
                await self._give_back(everything=True)

    @property
    def calls(self) -> int:
        """Calls held against this process's leases."""
        return len(self._calls)

    def live(self) -> dict[int, list[str]]:
        """Lease ids to renew, by account."""
        return {account_id: [lease.lease_id] for account_id, lease in self._leases.items()}

    def renewed(self, asked_at: float) -> None:
        """Every lease was renewed by a call made at `asked_at` (monotonic). One that had
        lapsed here by then may have been swept (renewing does not bring it back): it stays
        lapsed until it grows again."""
        for lease in self._leases.values():
            if lease.valid_until > asked_at:
                lease.valid_until = max(lease.valid_until, asked_at + self._valid_seconds)

    async def reserve(self, hold_id: str, account_id: int, amount: Decimal) -> Decimal | None:
        """Hold `amount` for the call within this process's lease (grown if need be): what
        the lease has left after it, or None when it cannot cover the call (the caller holds
        it per call instead). Raises RedisUnavailable when Redis does not answer."""
        if self._redis.breaker.state is not BreakerState.CLOSED:
            REDIS_FALLBACKS.labels("reserve").inc()
            raise RedisUnavailable("lease: Redis is away")
        need = to_nanos(amount)
        lease = self._leases.get(account_id)
        if lease is None:
            lease = self._leases[account_id] = _Lease(f"lease:{self._tag}:{next(self._ids)}")
        for _ in range(3):
            if lease.amount - lease.used >= need and time.monotonic() < lease.valid_until:
                lease.used += need
                lease.last_call = time.monotonic()
                self._calls[hold_id] = _Call(account_id, lease, need)
                return from_nanos(lease.amount - lease.used)
            if lease.growing is not None:
                await asyncio.shield(lease.growing)
                continue
            lease.growing = asyncio.get_running_loop().create_future()
            try:
                grown = await self._grow(account_id, lease, need)
                if not grown:  # the call is held on its own: what this lease spares counts
                    await self._give(account_id, lease, whole=not lease.used)
            finally:
                lease.growing.set_result(True)
                lease.growing = None
            if not grown:
                return None
        return None

    async def _grow(self, account_id: int, lease: _Lease, need: int) -> bool:
        want = need * LEASE_CALLS
        if lease.available is not None:
            want = max(need, min(want, lease.available // 8))
        keys = account_keys(account_id)
        head = [lease.lease_id, need, want, self._hold_ms, "1" if self._postpaid else "0"]
        asked_at = time.monotonic()
        seeds: list[Any] = ["", "", ""]
        for _ in range(2):
            args = [*head, *seeds, MIRROR_TTL_SECONDS]
            raw: Any = await self._script(self._lease, keys.all, args)
            code = int(raw[0])
            if code >= 0:
                lease.available = max(0, int(raw[1]))
                if code == 0:
                    return False
                lease.amount = int(raw[2])  # less than this process counted if it was swept
                lease.valid_until = asked_at + self._valid_seconds
                return True
            snapshot: Snapshot = await self._read(account_id, 0, None)
            seeds = [
                mirrored(to_nanos(snapshot.balance)),
                mirrored(to_nanos(snapshot.credit_limit)),
                snapshot.version,
            ]
        return False

    async def _script(self, script: LuaScript, keys: list[str], args: list[Any]) -> Any:
        """Run `script` through the breaker, patiently (money is at stake)."""

        async def run(client: Any) -> Any:
            return await script.run(client, keys, args)

        return await self._redis.call("lease", run, patient=True)

    async def load_scripts(self) -> None:
        """After Redis said NOSCRIPT to a shipment (it restarted, or its scripts were flushed)."""
        await self._settle.load(self._redis.background)

    def finished(self, batch: list[UsageEvent]) -> None:
        """Calls over: each one's worst case gives way to its charge."""
        for event in batch:
            call = self._calls.get(event.event_id)
            if call is None or call.charge is not None:
                continue
            call.charge = to_nanos(charge_for(event.cost))
            call.lease.used += call.charge - call.worst
            if not call.charge:
                self._forget(event.event_id)

    def settle_into(self, pipe: Any, batch: list[UsageEvent]) -> None:
        """Queue in `pipe`, ahead of the batch's XADDs, each lease's charges moving out of it."""
        by_lease: dict[str, _Settling] = {}
        for event in batch:
            call = self._calls.get(event.event_id)
            if call is None or not call.charge:
                continue
            settling = by_lease.setdefault(call.lease.lease_id, _Settling(call.account_id))
            settling.calls.append((event.event_id, call.charge))
        for lease_id, settling in by_lease.items():
            keys = account_keys(settling.account_id)
            pairs = [item for pair in settling.calls for item in pair]
            self._settle.queue(
                pipe, [keys.main, keys.holds, keys.expiry], [lease_id, self._pending_ms, *pairs]
            )

    def settled(self, batch: list[UsageEvent]) -> None:
        """The charges reached Redis, out of their leases."""
        for event in batch:
            call = self._calls.get(event.event_id)
            if call is not None and call.charge is not None:
                call.lease.amount -= call.charge
                call.lease.used -= call.charge
                self._forget(event.event_id)

    def recorded_here(self, event_ids: list[str]) -> None:
        """Recorded by this process (Redis away): the charges are in the balance, and the lease
        gives them back to Redis once it answers."""
        for event_id in event_ids:
            call = self._calls.get(event_id)
            if call is not None and call.charge is not None:
                call.lease.used -= call.charge
                call.lease.amount -= call.charge
                call.lease.give_back += call.charge
                self._forget(event_id)

    def _forget(self, event_id: str) -> None:
        self._calls.pop(event_id, None)

    async def _upkeep_forever(self) -> None:
        while True:
            await asyncio.sleep(UPKEEP_SECONDS)
            try:
                await self._give_back(everything=False)
            except REDIS_FAILURES as exc:
                logger.debug("giving leases back failed: %s", exc)

    async def _give_back(self, *, everything: bool) -> None:
        """Give back what idle leases do not use (every unused nano at a stop): an idle lease
        with no call in flight goes whole. While Redis is away this only probes it."""
        if self._redis.breaker.state is not BreakerState.CLOSED:
            await self._redis.call("lease", _ping, patient=True)
            return
        idle_since = time.monotonic() - IDLE_SECONDS
        for account_id, lease in list(self._leases.items()):
            if lease.growing is not None:
                continue
            idle = everything or lease.last_call < idle_since
            if idle:
                await self._give(account_id, lease, whole=not lease.used)
            elif lease.give_back:
                await self._give(account_id, lease, whole=False, spare=False)

    async def _give(
        self, account_id: int, lease: _Lease, *, whole: bool, spare: bool = True
    ) -> None:
        """Give back what the lease spares (whole: all of it, the lease goes) and the charges
        recorded here while Redis was away."""
        unused = max(0, lease.amount - lease.used) if spare or whole else 0
        amount = WHOLE if whole else unused + lease.give_back
        if not amount:
            return
        # Off the lease before the call, so calls meanwhile do not count on it. Should the
        # call fail, Redis holds what this process counts, or more: never less.
        lease.amount -= unused
        lease.give_back = 0
        keys = account_keys(account_id)
        left = await self._script(
            self._return, [keys.main, keys.holds, keys.expiry], [lease.lease_id, amount]
        )
        if int(left) < 0:  # gone: given back whole, or swept
            lease.amount = 0
            if not lease.used:
                self._drop(account_id, lease)

    def _drop(self, account_id: int, lease: _Lease) -> None:
        if self._leases.get(account_id) is lease:
            del self._leases[account_id]


async def _ping(client: Any) -> Any:
    return await client.ping()
