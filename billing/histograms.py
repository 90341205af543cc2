"""Latency and time-to-first-byte histograms in fixed buckets: counts of bucket i add up across
rollups, so a percentile can be read over any range of them (percentiles themselves don't add).
Pure functions, no Django: durations are whole microseconds, percents int or Decimal."""

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

# Upper bounds (inclusive), microseconds: ten per decade, each about 1.26x the one before
# (Renard's R10 series), from 1 ms to 80 s, then 100 s to 10 min; bucket 0 is 0..1 ms and one
# more bucket past the last bound counts what took longer than 10 min. So a percentile read
# from them is off by at most one step (26 %). Stored by position: changing them means
# rewriting every stored histogram in a data migration.
_R10 = (100, 125, 160, 200, 250, 315, 400, 500, 630, 800)
HISTOGRAM_BOUNDS_US: tuple[int, ...] = (
    *(step * 10**decade for decade in range(1, 6) for step in _R10),  # 1 ms .. 80 s
    *(step * 10**6 for step in _R10[:8]),  # 100 s .. 500 s
    600_000_000,  # 10 min
)
HISTOGRAM_SIZE = len(HISTOGRAM_BOUNDS_US) + 1


def histogram_empty() -> list[int]:
    return [0] * HISTOGRAM_SIZE


def histogram_bucket(value_us: int) -> int:
    """The bucket a duration falls in: the first whose upper bound is >= it."""
    return bisect_left(HISTOGRAM_BOUNDS_US, value_us)


def histogram_add(counts: Sequence[int], other: Sequence[int]) -> list[int]:
    """Bucket-wise sum; a shorter list (none stored yet) counts as zeros."""
    size = max(len(counts), len(other), HISTOGRAM_SIZE)
    padded = [*counts, *[0] * (size - len(counts))]
    return [count + (other[i] if i < len(other) else 0) for i, count in enumerate(padded)]


@dataclass(frozen=True, slots=True)
class HistogramBucket:
    """Where a percentile lies: above `lower_us`, at most `upper_us` (None: above 10 min)."""

    lower_us: int
    upper_us: int | None


def histogram_percentile(counts: Sequence[int], percent: int | Decimal) -> HistogramBucket | None:
    """The bucket holding the `percent`-th percentile (nearest rank: the smallest value with at
    least that percent of the counts at or below it), or None for an empty histogram."""
    if not 0 < percent <= 100:
        raise ValueError(f"a percentile is above 0 and at most 100, not {percent}")
    total = sum(counts)
    if total == 0:
        return None
    rank = max(1, int((Decimal(percent) * total / 100).to_integral_value(ROUND_CEILING)))
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if seen >= rank:
            return histogram_bucket_bounds(index)
    raise AssertionError("unreachable: the ranks add up to the total")


def histogram_bucket_bounds(index: int) -> HistogramBucket:
    lower = HISTOGRAM_BOUNDS_US[index - 1] if index > 0 else 0
    upper = HISTOGRAM_BOUNDS_US[index] if index < len(HISTOGRAM_BOUNDS_US) else None
    return HistogramBucket(lower, upper)
