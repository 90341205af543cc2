"""What a batch of usage events adds up to, written back in plain SQL: the balances, the
keys' budget spend and the minute / hour / day rollups (billing/recording.py's second half).

Each writer inserts the rows it lacks sorted (ON CONFLICT DO NOTHING), locks every row it
touches in one ORDER BY (billing/rollups.py's LOCK_ORDER for rollups), adds in Python (SQLite
would add decimals as floats) and writes back: a constant number of statements per batch.
"""

# S608: the statements are built from the models' own table and column names, quoted by the
# backend; every value is a parameter.
# ruff: noqa: S608

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import connection

from billing.histograms import HISTOGRAM_SIZE, histogram_add
from billing.models import Balance, BudgetSpend, UsageRollup
from billing.reservations import BalanceState
from billing.rollups import COUNTERS, LOCK_ORDER, SUMMED, RollupKey, period_start
from billing.sql_rows import columns, insert, select_rows, table

PERIODS = ("minute", "hour", "day")
ROLLUP_KEY_FIELDS = ("account_id", "period", "starts_at", "key_id", "model", "provider")


class Sums:
    """What a batch adds to one rollup row."""

    __slots__ = ("charged", "cost", "counts", "latency", "ttfb")

    def __init__(self) -> None:
        self.counts = [0] * len(COUNTERS)
        self.cost = Decimal(0)
        self.charged = Decimal(0)
        self.latency = [0] * HISTOGRAM_SIZE
        self.ttfb = [0] * HISTOGRAM_SIZE

    def add(
        self, counts: Sequence[int], cost: Decimal, charged: Decimal, latency: int, ttfb: int | None
    ) -> None:
        self.counts = [a + b for a, b in zip(self.counts, counts, strict=True)]
        self.cost += cost
        self.charged += charged
        self.latency[latency] += 1
        if ttfb is not None:
            self.ttfb[ttfb] += 1

    def merge(self, other: "Sums") -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.cost += other.cost
        self.charged += other.charged
        self.latency = [a + b for a, b in zip(self.latency, other.latency, strict=True)]
        self.ttfb = [a + b for a, b in zip(self.ttfb, other.ttfb, strict=True)]


def by_period(minutes: dict[tuple[int, datetime, int, str, str], Sums]) -> dict[RollupKey, Sums]:
    """The minute sums, and the hour and day sums made of them."""
    out: dict[RollupKey, Sums] = {}
    for (account_id, minute, key_id, model, provider), sums in minutes.items():
        for period in PERIODS:
            key = (account_id, period, period_start(period, minute), key_id, model, provider)
            total = out.get(key)
            if total is None:
                total = out[key] = Sums()
            total.merge(sums)
    return out


def balances_add(cursor: Any, spent: dict[int, Decimal], now: Any) -> dict[int, BalanceState]:
    """Take each account's charges off its balance; rows locked in account order."""
    if not spent:
        return {}
    order = sorted(spent)
    zero = connection.ops.adapt_decimalfield_value(Decimal(0))
    insert(
        cursor,
        Balance,
        ("account_id", "amount", "credit_limit", "version", "updated_at"),
        [(account_id, zero, zero, 0, now) for account_id in order],
        ignore_conflicts=True,
    )
    names = ("account_id", "amount", "credit_limit", "version")
    marks = ", ".join(["%s"] * len(order))
    rows = select_rows(
        cursor,
        Balance,
        names,
        f"{columns(Balance, ['account_id'])[0]} IN ({marks})",
        order,
        ["account_id"],
    )
    states: dict[int, BalanceState] = {}
    for account_id, amount, credit_limit, version in rows:
        states[account_id] = BalanceState(
            amount=amount - spent[account_id], version=version + 1, credit_limit=credit_limit
        )
    balance_table = table(Balance)
    amount_c, version_c, updated_c, account_c = columns(
        Balance, ["amount", "version", "updated_at", "account_id"]
    )
    cursor.executemany(
        f"UPDATE {balance_table} SET {amount_c} = %s, {version_c} = %s, {updated_c} = %s"
        f" WHERE {account_c} = %s",
        [(state.amount, state.version, now, account_id) for account_id, state in states.items()],
    )
    return states


def budget_spend_add(
    cursor: Any, added: dict[tuple[int, str], Decimal], accounts_of_keys: dict[int, int]
) -> dict[tuple[int, str], Decimal]:
    """Add to the keys' spend in each window; the rows locked in one order, sums in Python."""
    if not added:
        return {}
    zero = connection.ops.adapt_decimalfield_value(Decimal(0))
    insert(
        cursor,
        BudgetSpend,
        ("key_id", "window_name", "account_id", "amount"),
        [(key_id, window, accounts_of_keys[key_id], zero) for key_id, window in sorted(added)],
        ignore_conflicts=True,
    )
    keys = sorted({key_id for key_id, _ in added})
    names = sorted({window for _, window in added})
    key_c, window_c = columns(BudgetSpend, ["key_id", "window_name"])
    where = (
        f"{key_c} IN ({', '.join(['%s'] * len(keys))})"
        f" AND {window_c} IN ({', '.join(['%s'] * len(names))})"
    )
    rows = select_rows(
        cursor,
        BudgetSpend,
        ("id", "key_id", "window_name", "amount"),
        where,
        [*keys, *names],
        ["key_id", "window_name"],
    )
    totals: dict[tuple[int, str], Decimal] = {}
    updates = []
    for row_id, key_id, window, amount in rows:
        if (key_id, window) not in added:
            continue
        total = totals[key_id, window] = amount + added[key_id, window]
        updates.append((total, row_id))
    amount_c, id_c = columns(BudgetSpend, ["amount", "id"])
    cursor.executemany(
        f"UPDATE {table(BudgetSpend)} SET {amount_c} = %s WHERE {id_c} = %s", updates
    )
    return totals


def rollups_add(cursor: Any, deltas: dict[RollupKey, Sums]) -> None:
    """billing/rollups.py's rule: missing rows inserted sorted, all locked in LOCK_ORDER, the
    sums added in Python and written back."""
    ops = connection.ops
    adapt_time = ops.adapt_datetimefield_value
    zero = ops.adapt_decimalfield_value(Decimal(0))
    empty = ops.adapt_json_value([0] * HISTOGRAM_SIZE, None)
    insert(
        cursor,
        UsageRollup,
        (*ROLLUP_KEY_FIELDS, *SUMMED),
        [
            (
                account_id,
                period,
                adapt_time(starts_at),
                key_id,
                model,
                provider,
                *[0] * len(COUNTERS),
                zero,
                zero,
                empty,
                empty,
            )
            for account_id, period, starts_at, key_id, model, provider in sorted(deltas)
        ],
        ignore_conflicts=True,
    )
    starts: dict[str, set[datetime]] = defaultdict(set)
    for _, period, starts_at, *_rest in deltas:
        starts[period].add(starts_at)
    period_c, starts_c, account_c, key_c, model_c, provider_c = columns(
        UsageRollup, ["period", "starts_at", "account_id", "key_id", "model", "provider"]
    )
    clauses: list[str] = []
    params: list[Any] = []
    for period, moments in starts.items():
        clauses.append(f"({period_c} = %s AND {starts_c} IN ({', '.join(['%s'] * len(moments))}))")
        params.extend([period, *[adapt_time(moment) for moment in sorted(moments)]])
    where = [f"({' OR '.join(clauses)})"]
    for column, values in (
        (account_c, {key[0] for key in deltas}),
        (key_c, {key[3] for key in deltas}),
        (model_c, {key[4] for key in deltas}),
        (provider_c, {key[5] for key in deltas}),
    ):
        where.append(f"{column} IN ({', '.join(['%s'] * len(values))})")
        params.extend(sorted(values))
    names = ("id", *ROLLUP_KEY_FIELDS, *SUMMED)
    rows = select_rows(cursor, UsageRollup, names, " AND ".join(where), params, LOCK_ORDER)
    updates = []
    for row in rows:
        row_id, account_id, period, starts_at, key_id, model, provider, *summed = row
        sums = deltas.get((account_id, period, starts_at.astimezone(UTC), key_id, model, provider))
        if sums is None:
            continue  # a neighbour the filter also matched
        counts = summed[: len(COUNTERS)]
        cost, charged, latency, ttfb = summed[len(COUNTERS) :]
        updates.append(
            (
                *[a + b for a, b in zip(counts, sums.counts, strict=True)],
                cost + sums.cost,
                charged + sums.charged,
                ops.adapt_json_value(histogram_add(latency, sums.latency), None),
                ops.adapt_json_value(histogram_add(ttfb, sums.ttfb), None),
                row_id,
            )
        )
    if len(updates) != len(deltas):  # never silently lose a sum: the batch is rolled back
        raise RuntimeError(f"{len(deltas) - len(updates)} usage rollup rows vanished mid-batch")
    sets = ", ".join(f"{column} = %s" for column in columns(UsageRollup, SUMMED))
    id_c = columns(UsageRollup, ["id"])[0]
    cursor.executemany(f"UPDATE {table(UsageRollup)} SET {sets} WHERE {id_c} = %s", updates)
