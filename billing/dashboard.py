"""Reads of the dashboard: one account's rollups over a range, summed into its figures, a time
series and breakdowns by model and by key. Never the records: a month of hour rollups is a few
rows per hour, whatever the traffic (billing/rollups.py writes them with each batch).

A range is read in whole rollup periods: minutes for up to three hours, hours for up to eight
days, days beyond. The first period is the one holding `since`, so a range starting mid-hour
counts that hour whole; pick ranges on period boundaries for exact sums.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from billing.histograms import histogram_empty, histogram_percentile
from billing.models import RollupPeriod, UsageRollup
from billing.rollups import SUMMED, period_start

MAX_POINTS = 400  # a custom range longer than this many periods goes to the next period up
_STEP = {
    RollupPeriod.MINUTE: timedelta(minutes=1),
    RollupPeriod.HOUR: timedelta(hours=1),
    RollupPeriod.DAY: timedelta(days=1),
}


@dataclass(slots=True)
class Figures:
    """Sums over some rollups, and the percentiles their histograms hold (upper bounds, µs)."""

    requests: int = 0
    errors: int = 0
    streamed: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    spend: Decimal = Decimal(0)  # what the ledger charged
    latency: list[int] = field(default_factory=histogram_empty)
    ttfb: list[int] = field(default_factory=histogram_empty)

    def add(self, row: UsageRollup) -> None:
        self.requests += row.requests
        self.errors += row.status_4xx + row.status_5xx
        self.streamed += row.streamed
        self.tokens_in += row.uncached_input_tokens + row.cache_read_tokens
        self.tokens_in += row.cache_write_tokens
        self.tokens_out += row.output_tokens + row.reasoning_tokens
        self.spend += row.charged
        _add_into(self.latency, row.latency_histogram)
        _add_into(self.ttfb, row.ttfb_histogram)

    @property
    def error_rate(self) -> Decimal | None:
        """Percent of requests that ended in a 4xx or 5xx, one decimal; None for none."""
        if not self.requests:
            return None
        return (Decimal(100) * self.errors / self.requests).quantize(Decimal("0.1"))

    @property
    def success_rate(self) -> Decimal | None:
        """Percent of requests that did not end in a 4xx or 5xx, one decimal; None for none."""
        rate = self.error_rate
        return None if rate is None else Decimal(100) - rate

    def latency_us(self, percent: int) -> int | None:
        return _upper(self.latency, percent)

    def ttfb_us(self, percent: int) -> int | None:
        return _upper(self.ttfb, percent)


def _add_into(counts: list[int], other: list[int]) -> None:
    """histogram_add in place: a month of rollups is thousands of histograms to sum."""
    if len(other) > len(counts):
        counts.extend([0] * (len(other) - len(counts)))
    for index, count in enumerate(other):
        if count:
            counts[index] += count


def _upper(counts: list[int], percent: int) -> int | None:
    bucket = histogram_percentile(counts, percent)
    if bucket is None:
        return None
    return bucket.upper_us if bucket.upper_us is not None else bucket.lower_us


@dataclass(frozen=True, slots=True)
class Point:
    starts_at: datetime
    figures: Figures


@dataclass(frozen=True, slots=True)
class Dashboard:
    period: str
    since: datetime  # the first period's start
    until: datetime
    total: Figures
    series: list[Point]  # every period of the range, empty ones included, oldest first
    by_model: list[tuple[str, Figures]]  # most requests first
    by_key: list[tuple[int, Figures]]


def dashboard_period(since: datetime, until: datetime) -> str:
    """The rollup period a range is read in (see the module's docstring)."""
    span = until - since
    if span <= timedelta(hours=3):
        return RollupPeriod.MINUTE
    if span <= timedelta(days=8) and span / _STEP[RollupPeriod.HOUR] <= MAX_POINTS:
        return RollupPeriod.HOUR
    return RollupPeriod.DAY


def usage_dashboard(
    *,
    account_id: int,
    since: datetime,
    until: datetime,
    key_id: int | None = None,
    model: str = "",
    provider: str = "",
) -> Dashboard:
    """The account's usage in [since, until), read from its rollups, narrowed by key (0: the
    requests without one), model (card title) and provider."""
    period = dashboard_period(since, until)
    first = period_start(period, since)
    rows = UsageRollup.objects.filter(
        account_id=account_id, period=period, starts_at__gte=first, starts_at__lt=until
    )
    if key_id is not None:
        rows = rows.filter(key_id=key_id)
    if model:
        rows = rows.filter(model=model)
    if provider:
        rows = rows.filter(provider=provider)
    return _summed(period, first, until, rows.iterator(chunk_size=2000))


def _summed(
    period: str, first: datetime, until: datetime, rows: Iterable[UsageRollup]
) -> Dashboard:
    total = Figures()
    points: dict[datetime, Figures] = {}
    models: dict[str, Figures] = {}
    keys: dict[int, Figures] = {}
    for row in rows:
        total.add(row)
        points.setdefault(row.starts_at, Figures()).add(row)
        models.setdefault(row.model, Figures()).add(row)
        keys.setdefault(row.key_id, Figures()).add(row)
    series: list[Point] = []
    step, moment = _STEP[RollupPeriod(period)], first
    while moment < until and len(series) <= MAX_POINTS * 24:
        series.append(Point(moment, points.pop(moment, Figures())))
        moment += step
    return Dashboard(
        period=period,
        since=first,
        until=until,
        total=total,
        series=series,
        by_model=sorted(models.items(), key=lambda item: (-item[1].requests, item[0])),
        by_key=sorted(keys.items(), key=lambda item: (-item[1].requests, item[0])),
    )


def model_live_figures(*, since: datetime, until: datetime) -> dict[str, Figures]:
    """Every account's requests per model (card title) in [since, until), summed: the public
    catalog's live latency and success rate (figures over all traffic, no account's own)."""
    period = dashboard_period(since, until)
    rows = UsageRollup.objects.filter(
        period=period, starts_at__gte=period_start(period, since), starts_at__lt=until
    ).only("model", *SUMMED)
    figures: dict[str, Figures] = {}
    for row in rows.iterator(chunk_size=2000):
        figures.setdefault(row.model, Figures()).add(row)
    return figures
