"""Usage rollups: the records of a batch added to their minute, hour and day (UTC) rows per
account, key, model and provider, in the transaction that writes the records (the writing, in
plain SQL, is billing/recording.py's; this module holds the rows' shape and arithmetic).

Only records new to the database come here (usage_events_record skips events seen before), so
a replayed batch changes no rollup. The sums are exact on SQLite too: rows are read, added to
in Python and written back, never `F() + x` (SQLite would add decimals as floats). With two
consumers the rows are taken in one order, so neither waits on the other in a cycle: missing
rows are inserted first (sorted, ignoring conflicts; an INSERT that meets another consumer's
uncommitted row waits for it), then every row is locked in the ORDER BY below, then updated.
Queries per batch do not grow with its events, only with the rows they touch (a few inserts
and updates per UPDATE_BATCH rows, and one locking read).
"""

from datetime import UTC, datetime
from decimal import Decimal

from billing.histograms import histogram_add
from billing.models import RollupPeriod, UsageRollup

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


def rollup_merge(row: UsageRollup, delta: UsageRollup) -> None:
    """Add `delta`'s sums and histograms to `row` (in memory)."""
    for name in COUNTERS:
        setattr(row, name, getattr(row, name) + getattr(delta, name))
    row.cost += delta.cost
    row.charged += delta.charged
    row.latency_histogram = histogram_add(row.latency_histogram, delta.latency_histogram)
    row.ttfb_histogram = histogram_add(row.ttfb_histogram, delta.ttfb_histogram)
