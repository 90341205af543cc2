"""Budget windows at their boundaries, with the time passed in (never slept)."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from billing.periods import budget_window


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("period", "now", "name", "starts", "resets"),
    [
        ("daily", "2026-12-02T23:59:59.999999+00:00", "2026-12-02", "2026-12-02", "2026-12-03"),
        ("daily", "2026-12-03T00:00:00+00:00", "2026-12-03", "2026-12-03", "2026-12-04"),
        # 00:30 in Berlin is still the previous UTC day.
        ("daily", "2026-12-03T00:30:00+01:00", "2026-12-02", "2026-12-02", "2026-12-03"),
        ("weekly", "2026-12-06T23:59:59+00:00", "2026-W49", "2026-11-30", "2026-12-07"),
        ("weekly", "2026-12-07T00:00:00+00:00", "2026-W50", "2026-12-07", "2026-12-14"),
        # ISO weeks cross years: 2027-01-01 is a Friday of 2026's week 53.
        ("weekly", "2027-01-01T12:00:00+00:00", "2026-W53", "2026-12-28", "2027-01-04"),
        ("monthly", "2026-12-31T23:59:59+00:00", "2026-12", "2026-12-01", "2027-01-01"),
        ("monthly", "2027-01-01T00:00:00+00:00", "2027-01", "2027-01-01", "2027-02-01"),
        ("monthly", "2028-02-29T10:00:00+00:00", "2028-02", "2028-02-01", "2028-03-01"),
    ],
)
def test_windows_at_their_boundaries(
    period: str, now: str, name: str, starts: str, resets: str
) -> None:
    window = budget_window(period, at(now))
    assert window.name == name
    assert window.starts_at == at(starts + "T00:00:00+00:00")
    assert window.resets_at == at(resets + "T00:00:00+00:00")


def test_every_moment_of_a_window_names_it_and_the_next_starts_at_its_reset() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    for period in ("daily", "weekly", "monthly"):
        window = budget_window(period, start)
        assert window.resets_at is not None
        last = budget_window(period, window.resets_at - timedelta(microseconds=1))
        following = budget_window(period, window.resets_at)
        assert last.name == window.name
        assert following.name != window.name
        assert following.starts_at == window.resets_at


def test_a_lifetime_budget_never_resets_and_naive_times_are_refused() -> None:
    window = budget_window("never", datetime(2026, 12, 2, tzinfo=timezone(timedelta(hours=5))))
    assert (window.name, window.starts_at, window.resets_at) == ("lifetime", None, None)
    with pytest.raises(ValueError, match="aware"):
        budget_window("daily", datetime(2026, 12, 2))  # noqa: DTZ001  # the refusal under test
    with pytest.raises(ValueError, match="unknown budget period"):
        budget_window("hourly", datetime(2026, 12, 2, tzinfo=UTC))
