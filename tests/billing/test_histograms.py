"""Fixed histogram buckets and the percentiles read from them (pure functions)."""

from decimal import Decimal
from itertools import pairwise

import pytest

from billing.histograms import (
    HISTOGRAM_BOUNDS_US,
    HISTOGRAM_SIZE,
    HistogramBucket,
    histogram_add,
    histogram_bucket,
    histogram_empty,
    histogram_percentile,
)


def test_the_bounds_run_log_spaced_from_a_millisecond_to_ten_minutes() -> None:
    assert HISTOGRAM_BOUNDS_US[0] == 1_000
    assert HISTOGRAM_BOUNDS_US[-1] == 600_000_000
    assert HISTOGRAM_SIZE == len(HISTOGRAM_BOUNDS_US) + 1 == 60
    steps = [b / a for a, b in pairwise(HISTOGRAM_BOUNDS_US)]
    assert all(1.19 < step < 1.29 for step in steps)


@pytest.mark.parametrize(
    ("value_us", "bucket"),
    [(0, 0), (1_000, 0), (1_001, 1), (1_250, 1), (95_500, 20), (600_000_000, 58), (10**12, 59)],
)
def test_a_duration_falls_in_the_first_bucket_bounding_it(value_us: int, bucket: int) -> None:
    assert histogram_bucket(value_us) == bucket


def histogram_of(*values_us: int) -> list[int]:
    counts = histogram_empty()
    for value in values_us:
        counts[histogram_bucket(value)] += 1
    return counts


def test_percentiles_read_the_bucket_of_the_nearest_rank() -> None:
    # 90 fast (2 ms), 9 slower (300 ms), 1 very slow (20 min).
    counts = histogram_of(*[2_000] * 90, *[300_000] * 9, 20 * 60 * 10**6)
    assert histogram_percentile(counts, 50) == HistogramBucket(1_600, 2_000)
    assert histogram_percentile(counts, 90) == HistogramBucket(1_600, 2_000)
    assert histogram_percentile(counts, 91) == HistogramBucket(250_000, 315_000)
    assert histogram_percentile(counts, 99) == HistogramBucket(250_000, 315_000)
    assert histogram_percentile(counts, Decimal("99.5")) == HistogramBucket(600_000_000, None)
    assert histogram_percentile(counts, 100) == HistogramBucket(600_000_000, None)


def test_one_value_is_every_percentile_and_an_empty_histogram_has_none() -> None:
    counts = histogram_of(0)
    assert histogram_percentile(counts, Decimal("0.1")) == HistogramBucket(0, 1_000)
    assert histogram_percentile(counts, 100) == HistogramBucket(0, 1_000)
    assert histogram_percentile(histogram_empty(), 50) is None


@pytest.mark.parametrize("percent", [0, -1, 101, Decimal("100.01")])
def test_a_percentile_outside_0_to_100_is_refused(percent: int | Decimal) -> None:
    with pytest.raises(ValueError, match="a percentile"):
        histogram_percentile(histogram_of(5_000), percent)


def test_histograms_add_bucket_by_bucket() -> None:
    assert histogram_add(histogram_of(5_000), histogram_of(5_000, 9)) == histogram_of(
        5_000, 5_000, 9
    )
    assert histogram_add([], histogram_of(7)) == histogram_of(7)  # none stored yet
