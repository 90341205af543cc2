"""Charges this process recorded in the database while Redis was away, owed to Redis's mirrors.

With REDIS_URL, billing's consumer records usage and then brings Redis up to date (clears the
charges' holds, mirrors the new balances and budget spend). While Redis is away this process
records its own usage instead (proxy/gateway/recorder.py), so it owes Redis the same update:
what it committed is kept here, merged (only the newest version of a mirror matters), and
pushed as soon as Redis answers, in one pipeline. Until then the holds of those calls that were
held in Redis stay there and are renewed (the purse keeps them live), so no figure in Redis
ever counts such a charge neither as held nor as spent.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from billing.reservations import (
    CLEAR,
    MIRROR,
    BalanceState,
    RecordedBatch,
    recorded_calls,
    spends_by_account,
)
from proxy.gateway.scripts import LuaScript, is_noscript
from tokenbyte.redis import REDIS_FAILURES, GatewayRedis, describe

logger = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
# Beyond this many hold ids the oldest are forgotten: their holds, no longer renewed, expire.
IDS_LIMIT = 100_000


class OwedPushes:
    def __init__(self, redis: GatewayRedis, *, pushed: Callable[[list[str]], None]) -> None:
        self._redis = redis
        self._pushed = pushed  # told the hold ids whose charges Redis now has
        self._scripts = {CLEAR: LuaScript(CLEAR), MIRROR: LuaScript(MIRROR)}
        self._ids: dict[int, list[str]] = {}
        self._balances: dict[int, BalanceState] = {}
        self._spends: dict[tuple[int, int, str], tuple[Decimal, int]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._push_forever(), name="owed-pushes")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._ids or self._balances:
            logger.warning(
                "stopping with %d accounts' charges not pushed to Redis: their holds expire "
                "and the next charge billing records refreshes their mirrors",
                len(set(self._ids) | set(self._balances)),
            )

    def add(self, batch: RecordedBatch) -> None:
        self._merge(batch.event_ids, batch.balances, spends_by_account(batch))
        self._wake.set()

    def _merge(
        self,
        ids: dict[int, list[str]],
        balances: dict[int, BalanceState],
        spends: dict[tuple[int, int, str], tuple[Decimal, int]],
    ) -> None:
        for account_id, account_ids in ids.items():
            self._ids.setdefault(account_id, []).extend(account_ids)
        for account_id, state in balances.items():
            known = self._balances.get(account_id)
            if known is None or known.version < state.version:
                self._balances[account_id] = state
        for spend_key, figure in spends.items():
            known_spend = self._spends.get(spend_key)
            if known_spend is None or known_spend[1] < figure[1]:
                self._spends[spend_key] = figure
        overflow = sum(len(v) for v in self._ids.values()) - IDS_LIMIT
        for account_id in list(self._ids):
            if overflow <= 0:
                break
            cut = min(overflow, len(self._ids[account_id]))
            del self._ids[account_id][:cut]
            overflow -= cut

    async def _push_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._ids or self._balances or self._spends:
                if await self._push_once():
                    break
                await asyncio.sleep(RETRY_SECONDS)

    async def _push_once(self) -> bool:
        ids, balances, spends = self._ids, self._balances, self._spends
        self._ids, self._balances, self._spends = {}, {}, {}
        calls = recorded_calls(event_ids=ids, balances=balances, spends=spends)
        try:
            for _ in range(2):
                errors = [r for r in await self._send(calls) if isinstance(r, Exception)]
                if not any(is_noscript(error) for error in errors):
                    break
                for script in self._scripts.values():
                    await script.load(self._redis.background)
            for error in errors:  # Redis answered: retrying would get the same answer
                logger.error("Redis refused an owed charge's update: %s", error)
        except REDIS_FAILURES as exc:
            self._merge(ids, balances, spends)  # newer ones, merged meanwhile, win
            logger.debug("pushing owed charges to Redis failed (%s); retrying", describe(exc))
            return False
        logger.warning(
            "pushed to Redis the charges of %d calls recorded here while it was away",
            sum(len(v) for v in ids.values()),
        )
        self._pushed([hold_id for account_ids in ids.values() for hold_id in account_ids])
        return True

    async def _send(self, calls: list[tuple[str, list[str], list[Any]]]) -> list[Any]:
        async with self._redis.background.pipeline(transaction=False) as pipe:
            for script, keys, args in calls:
                self._scripts[script].queue(pipe, keys, args)
            return list(await pipe.execute(raise_on_error=False))
