"""Usage rollups: the records of a batch added to their minute, hour and day (UTC) rows per
account, key, model and provider, in the transaction that writes the records.

Only records new to the database come here (usage_events_record skips events seen before), so
a replayed batch changes no rollup. The sums are exact on SQLite too: rows are read, added to
in Python and written back, never `F() + x` (SQLite would add decimals as floats). With two
consumers the rows are taken in one order, so neither waits on the other in a cycle: missing
rows are inserted first (sorted, ignoring conflicts; an INSERT that meets another consumer's
uncommitted row waits for it), then every row is locked in the ORDER BY below, then updated.
Queries per batch do not grow with its events, only with the rows they touch (a few inserts
and updates per UPDATE_BATCH rows, and one locking read).
"""

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from django.db.models import Q

from billing.histograms import histogram_add, histogram_bucket
from billing.models import RollupPeriod, UsageRecord, UsageRollup

# (account id, period, start, key id, model, provider): one rollup row.
RollupKey = tuple[int, str, datetime, int, str, str]

NO_KEY = 0  # key_id of a request without a key
COUNTERS = (
    "requests",
    "status_2xx",
    "status_4xx",
    "status_5xx",
    "client_disconnected",
    "cancelled",
    "streamed",
    "uncached_input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
)
SUMMED = (*COUNTERS, "cost", "charged", "latency_histogram", "ttfb_histogram")
# Rows per UPDATE: bulk_update writes one CASE per field over every row of a statement, so a
# huge statement costs rows x rows; SQLite's parameter limit caps it lower still.
UPDATE_BATCH = 200
LOCK_ORDER = ("account_id", "period", "starts_at", "key_id", "model", "provider")


def period_start(period: str, moment: datetime) -> datetime:
    utc = moment.astimezone(UTC)
    if period == RollupPeriod.MINUTE:
        return utc.replace(second=0, microsecond=0)
    if period == RollupPeriod.HOUR:
        return utc.replace(minute=0, second=0, microsecond=0)
    if period == RollupPeriod.DAY:
        return utc.replace(hour=0, minute=0, second=0, microsecond=0)
    raise ValueError(f"unknown rollup period {period!r}")


def usage_rollups_add(records: Sequence[UsageRecord]) -> int:
    """Add records (new to the database, in the caller's transaction) to their rollups;
    returns how many rollup rows changed."""
    deltas: dict[RollupKey, UsageRollup] = {}
    for record in records:
        for period in RollupPeriod.values:
            key = _key_of_record(record, period)
            delta = deltas.get(key)
            if delta is None:
                delta = deltas[key] = rollup_empty(key)
            _count(delta, record)
    if not deltas:
        return 0
    UsageRollup.objects.bulk_create(
        [rollup_empty(key) for key in sorted(deltas)], ignore_conflicts=True
    )
    rows = [row for row in _locked(deltas) if _key_of_row(row) in deltas]
    if len(rows) != len(deltas):  # never silently lose a sum: the batch is rolled back
        raise RuntimeError(f"{len(deltas) - len(rows)} usage rollup rows vanished mid-batch")
    for row in rows:
        rollup_merge(row, deltas[_key_of_row(row)])
    UsageRollup.objects.bulk_update(rows, SUMMED, batch_size=UPDATE_BATCH)
    return len(rows)


def _key_of_record(record: UsageRecord, period: str) -> RollupKey:
    return (
        record.account_id,
        period,
        period_start(period, record.started_at),
        NO_KEY if record.key_id is None else record.key_id,
        record.model,
        record.provider,
    )


def _key_of_row(row: UsageRollup) -> RollupKey:
    return (
        row.account_id,
        row.period,
        row.starts_at.astimezone(UTC),
        row.key_id,
        row.model,
        row.provider,
    )


def rollup_empty(key: RollupKey) -> UsageRollup:
    account_id, period, starts_at, key_id, model, provider = key
    return UsageRollup(
        account_id=account_id,
        period=period,
        starts_at=starts_at,
        key_id=key_id,
        model=model,
        provider=provider,
        cost=Decimal(0),
        charged=Decimal(0),
    )


def _locked(deltas: dict[RollupKey, UsageRollup]) -> list[UsageRollup]:
    """Every row of `deltas` (and maybe a few neighbours, which are then left alone), locked
    in LOCK_ORDER: a bounded filter by the values each column takes, not one term per row."""
    starts: dict[str, set[datetime]] = defaultdict(set)
    for _, period, starts_at, *_rest in deltas:
        starts[period].add(starts_at)
    in_periods = Q()
    for period, moments in starts.items():
        in_periods |= Q(period=period, starts_at__in=moments)
    return list(
        UsageRollup.objects.select_for_update()
        .filter(
            in_periods,
            account_id__in={key[0] for key in deltas},
            key_id__in={key[3] for key in deltas},
            model__in={key[4] for key in deltas},
            provider__in={key[5] for key in deltas},
        )
        .order_by(*LOCK_ORDER)
    )


def _count(delta: UsageRollup, record: UsageRecord) -> None:
    delta.requests += 1
    status_class = record.status // 100
    if status_class == 2:
        delta.status_2xx += 1
    elif status_class == 4:
        delta.status_4xx += 1
    elif status_class == 5:
        delta.status_5xx += 1
    delta.client_disconnected += record.error_code == "client_disconnected"
    delta.cancelled += record.error_code == "cancelled"
    delta.streamed += record.stream
    delta.uncached_input_tokens += record.uncached_input_tokens
    delta.cache_read_tokens += record.cache_read_tokens
    delta.cache_write_tokens += record.cache_write_tokens
    delta.output_tokens += record.output_tokens
    delta.reasoning_tokens += record.reasoning_tokens
    delta.cost += record.cost
    delta.charged += record.charged
    delta.latency_histogram[histogram_bucket(record.latency_us)] += 1
    if record.ttfb_us is not None:
        delta.ttfb_histogram[histogram_bucket(record.ttfb_us)] += 1


def rollup_merge(row: UsageRollup, delta: UsageRollup) -> None:
    """Add `delta`'s sums and histograms to `row` (in memory)."""
    for name in COUNTERS:
        setattr(row, name, getattr(row, name) + getattr(delta, name))
    row.cost += delta.cost
    row.charged += delta.charged
    row.latency_histogram = histogram_add(row.latency_histogram, delta.latency_histogram)
    row.ttfb_histogram = histogram_add(row.ttfb_histogram, delta.ttfb_histogram)
