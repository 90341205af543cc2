"""This process's own holds against the database's figures: embedded mode's reservations (one
process), proxy/gateway/purse.py says when they are used."""

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from billing.money import hold_verdict
from billing.reservations import RecordedBatch
from proxy.gateway.stores import Snapshot

LOCAL_SNAPSHOT_SECONDS = 1.0


# (account id, key id, budget window or None) -> the database's figures, on a database thread.
SnapshotReader = Callable[[int, int, str | None], Awaitable[Snapshot]]


@dataclass(frozen=True, slots=True)
class Verdict:
    held: bool
    available: Decimal  # the balance left for this call (before it, when refused)
    budget_left: Decimal | None  # None: the key has no budget


@dataclass(slots=True)
class _Figure:
    """A database figure (a balance, a key's spend in a window) as this process last knew it."""

    amount: Decimal
    version: int
    read_at: float
    credit_limit: Decimal = Decimal(0)


class LocalHolds:
    """This process's own holds, against the database's figures (embedded mode, or Redis
    unreachable).

    A finished call's hold becomes its charge and stays until this process has recorded it,
    which also hands over the new balance and spend; so each charge counts once: held, or in
    the database's figures, never in neither. A charge shipped to Redis instead (it came back)
    is released then: billing records it later, and the figures are read again every
    LOCAL_SNAPSHOT_SECONDS.
    """

    def __init__(self, read_snapshot: SnapshotReader, *, postpaid: bool) -> None:
        self._read = read_snapshot
        self._postpaid = postpaid
        self._holds: dict[str, tuple[int, int, Decimal]] = {}  # id -> account, key, amount
        self._held: dict[int, Decimal] = {}
        self._held_by_key: dict[int, Decimal] = {}
        self._balances: dict[int, _Figure] = {}
        self._spends: dict[tuple[int, str], _Figure] = {}

    async def reserve(
        self,
        hold_id: str,
        account_id: int,
        key_id: int,
        budget: Decimal | None,
        window: str | None,
        amount: Decimal,
    ) -> Verdict:
        balance, spend = await self._figures(account_id, key_id, window)
        # Read after the await: other calls may have held meanwhile.
        verdict = Verdict(
            *hold_verdict(
                amount,
                balance=balance.amount,
                credit_limit=balance.credit_limit if self._postpaid else Decimal(0),
                held=self._held.get(account_id, Decimal(0)),
                budget=budget,
                spent=spend.amount if spend is not None else Decimal(0),
                key_held=self._held_by_key.get(key_id, Decimal(0)),
            )
        )
        if verdict.held:
            self._add(hold_id, account_id, key_id, amount)
        return verdict

    @property
    def calls(self) -> int:
        return len(self._holds)

    def finished(self, hold_id: str, charge: Decimal) -> None:
        """The call is over: its hold becomes its charge until recorded, or goes."""
        if not charge:
            self.release(hold_id)
            return
        hold = self._holds.get(hold_id)
        if hold is not None:
            self.release(hold_id)
            self._add(hold_id, hold[0], hold[1], charge)

    def recorded(self, batch: RecordedBatch) -> None:
        """The recorder committed `batch`: its charges are in the database's figures now."""
        now = time.monotonic()
        for account_id, state in batch.balances.items():
            self._learn(
                self._balances,
                account_id,
                _Figure(state.amount, state.version, now, state.credit_limit),
            )
        for (key_id, window), amount in batch.spends.items():
            version = batch.balances[batch.accounts_of_keys[key_id]].version
            self._learn(self._spends, (key_id, window), _Figure(amount, version, now))
        for ids in batch.event_ids.values():
            for event_id in ids:
                self.release(event_id)

    def release(self, hold_id: str) -> None:
        hold = self._holds.pop(hold_id, None)
        if hold is None:
            return
        account_id, key_id, amount = hold
        self._held[account_id] -= amount
        self._held_by_key[key_id] -= amount
        if not self._held[account_id]:
            del self._held[account_id]
        if not self._held_by_key[key_id]:
            del self._held_by_key[key_id]

    def _add(self, hold_id: str, account_id: int, key_id: int, amount: Decimal) -> None:
        self._holds[hold_id] = (account_id, key_id, amount)
        self._held[account_id] = self._held.get(account_id, Decimal(0)) + amount
        self._held_by_key[key_id] = self._held_by_key.get(key_id, Decimal(0)) + amount

    async def _figures(
        self, account_id: int, key_id: int, window: str | None
    ) -> tuple[_Figure, _Figure | None]:
        now = time.monotonic()
        balance = self._balances.get(account_id)
        spend = self._spends.get((key_id, window)) if window is not None else None
        fresh = balance is not None and now - balance.read_at < LOCAL_SNAPSHOT_SECONDS
        if window is not None:
            fresh = fresh and spend is not None and now - spend.read_at < LOCAL_SNAPSHOT_SECONDS
        if fresh and balance is not None:
            return balance, spend
        snapshot = await self._read(account_id, key_id, window)
        if len(self._balances) > 10_000 or len(self._spends) > 10_000:
            self._balances.clear()
            self._spends.clear()
        # A read that started before a batch was recorded may end after it: the newer wins.
        balance = self._learn(
            self._balances,
            account_id,
            _Figure(snapshot.balance, snapshot.version, now, snapshot.credit_limit),
        )
        if window is not None:
            spend = self._learn(
                self._spends, (key_id, window), _Figure(snapshot.spent, snapshot.version, now)
            )
        return balance, spend

    @staticmethod
    def _learn(figures: dict[Any, _Figure], key: Any, figure: _Figure) -> _Figure:
        known = figures.get(key)
        if known is not None and known.version > figure.version:
            known.read_at = figure.read_at  # still the newest this process knows
            return known
        figures[key] = figure
        return figure
