"""Recording a batch of usage events in plain SQL: the body of
billing.services.usage_events_record, in the caller's transaction.

The same rows the ORM would write (tests/billing/test_recording_conformance.py holds it to the
ORM version this replaced), for a fraction of its cost: records and charges go in as tuples
through one `executemany` each, and the balances, budget spends and rollups a batch touches
are read, summed in Python (SQLite would add decimals as floats) and written back with a
constant number of statements per batch, whatever its size. Values go through the backend's
own adapters and come back through Django's own converters, so SQLite and PostgreSQL store and
read exactly what the ORM does.

Locking is the ORM version's, on PostgreSQL: new rows are inserted sorted (ON CONFLICT DO
NOTHING: an insert that meets another writer's uncommitted row waits for it), then every row
is locked in one ORDER BY, then updated. So two writers never wait on each other in a cycle.
"""

# S608: the statements are built from the models' own table and column names, quoted by the
# backend; every value is a parameter.
# ruff: noqa: S608

import functools
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Model
from django.utils import timezone

from billing.events import UsageEvent
from billing.histograms import HISTOGRAM_SIZE, histogram_add, histogram_bucket
from billing.models import (
    RESPONSE_ID_LENGTH,
    Balance,
    BudgetSpend,
    EntryKind,
    LedgerEntry,
    UsageRecord,
    UsageRollup,
)
from billing.money import charge_for
from billing.periods import DAILY, LIFETIME, MONTHLY, WEEKLY, budget_window
from billing.reservations import BalanceState, RecordedBatch
from billing.rollups import COUNTERS, LOCK_ORDER, NO_KEY, SUMMED, RollupKey, period_start

logger = logging.getLogger("billing.services")

BUDGET_PERIODS = (DAILY, WEEKLY, MONTHLY, LIFETIME)
PERIODS = ("minute", "hour", "day")
IN_CHUNK = 500  # ids per IN (...): well under SQLite's and PostgreSQL's parameter limits

RECORD_FIELDS = (
    "event_id",
    "request_id",
    "account_id",
    "key_id",
    "card_id",
    "credential_id",
    "endpoint",
    "model",
    "provider",
    "status",
    "error_code",
    "stream",
    "client_disconnected",
    "uncached_input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "estimated",
    "cache_write_1h_tokens",
    "service_tier",
    "server_tool_calls",
    "cost",
    "charged",
    "started_at",
    "latency_us",
    "ttfb_us",
    "attempts",
    "upstream_request_id",
    "response_id",
    "attempt_log",
)
CHARGE_FIELDS = (
    "account_id",
    "amount",
    "kind",
    "event_id",
    "request_id",
    "note",
    "created_by_id",
    "created_at",
)
ROLLUP_KEY_FIELDS = ("account_id", "period", "starts_at", "key_id", "model", "provider")


def _attempt_log(event: UsageEvent) -> list[dict[str, Any]]:
    # Spelled out: dataclasses.asdict deep-copies, at several microseconds a record.
    return [
        {
            "credential_id": attempt.credential_id,
            "started_ms": attempt.started_ms,
            "duration_ms": attempt.duration_ms,
            "status": attempt.status,
            "error_code": attempt.error_code,
        }
        for attempt in event.attempt_log
    ]


class _Sums:
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

    def merge(self, other: "_Sums") -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.cost += other.cost
        self.charged += other.charged
        self.latency = [a + b for a, b in zip(self.latency, other.latency, strict=True)]
        self.ttfb = [a + b for a, b in zip(self.ttfb, other.ttfb, strict=True)]


def _by_period(minutes: dict[tuple[int, datetime, int, str, str], _Sums]) -> dict[RollupKey, _Sums]:
    """The minute sums, and the hour and day sums made of them."""
    out: dict[RollupKey, _Sums] = {}
    for (account_id, minute, key_id, model, provider), sums in minutes.items():
        for period in PERIODS:
            key = (account_id, period, period_start(period, minute), key_id, model, provider)
            total = out.get(key)
            if total is None:
                total = out[key] = _Sums()
            total.merge(sums)
    return out


def record_events(events: Sequence[UsageEvent]) -> RecordedBatch:
    """usage_events_record's work; the caller holds the transaction."""
    with connection.cursor() as cursor:
        ids = [event.event_id for event in events]
        known = set(_select_in(cursor, UsageRecord, "event_id", "event_id", ids))
        user = get_user_model()
        accounts = set(
            _select_in(
                cursor,
                user,
                user._meta.pk.column,
                user._meta.pk.column,
                {event.account_id for event in events if event.account_id is not None},
            )
        )
        fresh: dict[str, tuple[int, UsageEvent]] = {}
        settled: dict[int, list[str]] = defaultdict(list)
        for event in events:
            if event.account_id is not None and (
                event.event_id in known or event.account_id in accounts
            ):
                settled[event.account_id].append(event.event_id)
            if event.event_id in known:
                continue
            if event.account_id not in accounts or event.account_id is None:
                # Deleted while its request was in flight: nothing left to charge. Said loudly,
                # and skipped, so one such event cannot hold back the batch around it.
                logger.error("usage event %s: account %s is gone", event.event_id, event.account_id)
                continue
            fresh.setdefault(event.event_id, (event.account_id, event))  # twice in a batch
        if not fresh:
            return RecordedBatch(0, dict(settled), {}, {}, {})

        adapt_time = _time_adapter()
        prep_json = UsageRecord._meta.get_field("server_tool_calls").get_db_prep_save
        now = adapt_time(timezone.now())
        records: list[tuple[Any, ...]] = []
        charges: list[tuple[Any, ...]] = []
        spent: dict[int, Decimal] = defaultdict(Decimal)
        key_spent: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
        accounts_of_keys: dict[int, int] = {}
        minutes: dict[tuple[int, datetime, int, str, str], _Sums] = {}
        windows: dict[Any, list[str]] = {}
        # By event id: two writers given overlapping batches meet on the same first event
        # (the later waits, then fails on the unique id and is redelivered), never in a cycle.
        for event_id in sorted(fresh):
            account_id, event = fresh[event_id]
            usage = event.usage
            charge = charge_for(event.cost)
            started = datetime.fromtimestamp(event.started_at, UTC)
            latency_us = round(event.latency_ms * 1000)
            ttfb_us = None if event.ttfb_ms is None else round(event.ttfb_ms * 1000)
            model = event.model[:200]
            provider = event.provider or ""
            error_code = event.error_code or ""
            records.append(
                (
                    event_id,
                    event.request_id,
                    account_id,
                    event.key_id,
                    event.card_id,
                    event.credential_id,
                    event.endpoint,
                    model,
                    provider,
                    event.status,
                    error_code,
                    event.stream,
                    event.client_disconnected,
                    usage.uncached_input,
                    usage.cache_read,
                    usage.cache_write,
                    usage.output,
                    usage.reasoning,
                    usage.estimated,
                    usage.cache_write_1h,
                    (usage.service_tier or "")[:32],
                    prep_json(dict(usage.server_tools), connection),
                    event.cost,
                    charge,
                    adapt_time(started),
                    latency_us,
                    ttfb_us,
                    event.attempts,
                    event.upstream_request_id or "",
                    (event.response_id or "")[:RESPONSE_ID_LENGTH],
                    prep_json(_attempt_log(event), connection),
                )
            )
            status_class = event.status // 100
            counts = (
                1,
                status_class == 2,
                status_class == 4,
                status_class == 5,
                error_code == "client_disconnected",
                error_code == "cancelled",
                event.stream,
                usage.uncached_input,
                usage.cache_read,
                usage.cache_write,
                usage.output,
                usage.reasoning,
            )
            latency_bucket = histogram_bucket(latency_us)
            ttfb_bucket = None if ttfb_us is None else histogram_bucket(ttfb_us)
            key_id = NO_KEY if event.key_id is None else event.key_id
            # Summed by minute here; the hours and days are added up from the minutes below.
            minute = (account_id, started.replace(second=0, microsecond=0), key_id, model, provider)
            sums = minutes.get(minute)
            if sums is None:
                sums = minutes[minute] = _Sums()
            sums.add(counts, event.cost, charge, latency_bucket, ttfb_bucket)
            if not charge:
                continue
            charges.append(
                (
                    account_id,
                    -charge,
                    EntryKind.CHARGE.value,
                    event_id,
                    event.request_id,
                    "",
                    None,
                    now,
                )
            )
            spent[account_id] += charge
            if event.key_id is not None:
                accounts_of_keys[event.key_id] = account_id
                day = started.date()
                names = windows.get(day)
                if names is None:
                    names = windows[day] = [budget_window(p, started).name for p in BUDGET_PERIODS]
                for name in names:
                    key_spent[event.key_id, name] += charge

        _insert(cursor, UsageRecord, RECORD_FIELDS, records)
        _insert(cursor, LedgerEntry, CHARGE_FIELDS, charges)
        balances = _balances_add(cursor, spent, now)
        spends = _budget_spend_add(cursor, key_spent, accounts_of_keys)
        _rollups_add(cursor, _by_period(minutes))
    return RecordedBatch(len(records), dict(settled), balances, spends, accounts_of_keys)


def _time_adapter() -> Callable[[datetime], Any]:
    """The backend's own adapter for an aware UTC datetime, or on SQLite in UTC what it comes
    to (the naive datetime's str), without its per-call checks."""
    if connection.vendor == "sqlite" and connection.timezone == UTC:
        return lambda moment: str(moment.astimezone(UTC).replace(tzinfo=None))
    return connection.ops.adapt_datetimefield_value


def _table(model: type[Model]) -> str:
    return _quoted(connection.vendor, model, None)[0]


def _columns(model: type[Model], names: Iterable[str]) -> list[str]:
    return list(_quoted(connection.vendor, model, tuple(names)))


@functools.cache
def _quoted(vendor: str, model: type[Model], names: tuple[str, ...] | None) -> tuple[str, ...]:
    """The table's quoted name (names None), or the named fields' quoted columns."""
    quote = connection.ops.quote_name
    if names is None:
        return (quote(model._meta.db_table),)
    return tuple(quote(_field(model, name).column) for name in names)


def _field(model: type[Model], name: str) -> Any:
    # A concrete field of the model (get_field's type also covers relations' reverse sides).
    return model._meta.get_field(name)


def _for_update() -> str:
    return " FOR UPDATE" if connection.features.has_select_for_update else ""


def _select_in(
    cursor: Any, model: type[Model], column: str, wanted: str, values: Iterable[Any]
) -> list[Any]:
    values = list(values)
    found: list[Any] = []
    quote = connection.ops.quote_name
    for start in range(0, len(values), IN_CHUNK):
        chunk = values[start : start + IN_CHUNK]
        marks = ", ".join(["%s"] * len(chunk))
        cursor.execute(
            f"SELECT {quote(wanted)} FROM {_table(model)} WHERE {quote(column)} IN ({marks})",
            chunk,
        )
        found.extend(row[0] for row in cursor.fetchall())
    return found


def _insert(
    cursor: Any,
    model: type[Model],
    names: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    ignore_conflicts: bool = False,
) -> None:
    if not rows:
        return
    marks = ", ".join(["%s"] * len(names))
    sql = f"INSERT INTO {_table(model)} ({', '.join(_columns(model, names))}) VALUES ({marks})"
    if ignore_conflicts:
        sql += " ON CONFLICT DO NOTHING"
    cursor.executemany(sql, rows)


@functools.cache
def _converters(vendor: str, model: type[Model], names: tuple[str, ...]) -> tuple[Any, ...]:
    """Per column, (expression, converters) as the ORM reads it on this backend."""
    out = []
    for name in names:
        field = _field(model, name)
        column = field.get_col(model._meta.db_table)
        converters = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        out.append((column, tuple(converters)))
    return tuple(out)


def _select_rows(
    cursor: Any,
    model: type[Model],
    names: tuple[str, ...],
    where: str,
    params: Sequence[Any],
    order: Sequence[str],
) -> list[list[Any]]:
    """Rows locked (FOR UPDATE where the backend has it) in `order`, read as the ORM reads."""
    sql = (
        f"SELECT {', '.join(_columns(model, names))} FROM {_table(model)} WHERE {where}"
        f" ORDER BY {', '.join(_columns(model, order))}{_for_update()}"
    )
    cursor.execute(sql, params)
    converters = _converters(connection.vendor, model, names)
    rows = []
    for raw in cursor.fetchall():
        row = list(raw)
        for index, (column, functions) in enumerate(converters):
            for function in functions:
                row[index] = function(row[index], column, connection)
        rows.append(row)
    return rows


def _balances_add(cursor: Any, spent: dict[int, Decimal], now: Any) -> dict[int, BalanceState]:
    """Take each account's charges off its balance; rows locked in account order."""
    if not spent:
        return {}
    order = sorted(spent)
    zero = connection.ops.adapt_decimalfield_value(Decimal(0))
    _insert(
        cursor,
        Balance,
        ("account_id", "amount", "credit_limit", "version", "updated_at"),
        [(account_id, zero, zero, 0, now) for account_id in order],
        ignore_conflicts=True,
    )
    names = ("account_id", "amount", "credit_limit", "version")
    marks = ", ".join(["%s"] * len(order))
    rows = _select_rows(
        cursor,
        Balance,
        names,
        f"{_columns(Balance, ['account_id'])[0]} IN ({marks})",
        order,
        ["account_id"],
    )
    states: dict[int, BalanceState] = {}
    for account_id, amount, credit_limit, version in rows:
        states[account_id] = BalanceState(
            amount=amount - spent[account_id], version=version + 1, credit_limit=credit_limit
        )
    table = _table(Balance)
    amount_c, version_c, updated_c, account_c = _columns(
        Balance, ["amount", "version", "updated_at", "account_id"]
    )
    cursor.executemany(
        f"UPDATE {table} SET {amount_c} = %s, {version_c} = %s, {updated_c} = %s"
        f" WHERE {account_c} = %s",
        [(state.amount, state.version, now, account_id) for account_id, state in states.items()],
    )
    return states


def _budget_spend_add(
    cursor: Any, added: dict[tuple[int, str], Decimal], accounts_of_keys: dict[int, int]
) -> dict[tuple[int, str], Decimal]:
    """Add to the keys' spend in each window; the rows locked in one order, sums in Python."""
    if not added:
        return {}
    zero = connection.ops.adapt_decimalfield_value(Decimal(0))
    _insert(
        cursor,
        BudgetSpend,
        ("key_id", "window_name", "account_id", "amount"),
        [(key_id, window, accounts_of_keys[key_id], zero) for key_id, window in sorted(added)],
        ignore_conflicts=True,
    )
    keys = sorted({key_id for key_id, _ in added})
    names = sorted({window for _, window in added})
    key_c, window_c = _columns(BudgetSpend, ["key_id", "window_name"])
    where = (
        f"{key_c} IN ({', '.join(['%s'] * len(keys))})"
        f" AND {window_c} IN ({', '.join(['%s'] * len(names))})"
    )
    rows = _select_rows(
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
    amount_c, id_c = _columns(BudgetSpend, ["amount", "id"])
    cursor.executemany(
        f"UPDATE {_table(BudgetSpend)} SET {amount_c} = %s WHERE {id_c} = %s", updates
    )
    return totals


def _rollups_add(cursor: Any, deltas: dict[RollupKey, _Sums]) -> None:
    """billing/rollups.py's rule: missing rows inserted sorted, all locked in LOCK_ORDER, the
    sums added in Python and written back."""
    ops = connection.ops
    adapt_time = ops.adapt_datetimefield_value
    zero = ops.adapt_decimalfield_value(Decimal(0))
    empty = ops.adapt_json_value([0] * HISTOGRAM_SIZE, None)
    _insert(
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
    period_c, starts_c, account_c, key_c, model_c, provider_c = _columns(
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
    rows = _select_rows(cursor, UsageRollup, names, " AND ".join(where), params, LOCK_ORDER)
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
    sets = ", ".join(f"{column} = %s" for column in _columns(UsageRollup, SUMMED))
    id_c = _columns(UsageRollup, ["id"])[0]
    cursor.executemany(f"UPDATE {_table(UsageRollup)} SET {sets} WHERE {id_c} = %s", updates)
