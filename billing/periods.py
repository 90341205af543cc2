"""A key's budget periods, in UTC: the window a moment falls in, when it resets, and the name
its spend is kept under. Time is passed in, never read here, so the boundaries are testable."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

DAILY, WEEKLY, MONTHLY, LIFETIME = "daily", "weekly", "monthly", "never"


@dataclass(frozen=True, slots=True)
class BudgetWindow:
    name: str  # "2026-12-02", "2026-W49", "2026-12" or "lifetime": where the spend is kept
    starts_at: datetime | None  # None: a lifetime budget
    resets_at: datetime | None


def budget_window(period: str, now: datetime) -> BudgetWindow:
    """The window of `period` (UTC calendar day, ISO week from Monday, calendar month, or the
    key's lifetime) that `now` (timezone-aware) falls in."""
    if now.tzinfo is None:
        raise ValueError("budget windows need an aware datetime")
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == DAILY:
        return BudgetWindow(day.strftime("%Y-%m-%d"), day, day + timedelta(days=1))
    if period == WEEKLY:
        monday = day - timedelta(days=day.weekday())
        year, week, _ = monday.isocalendar()
        return BudgetWindow(f"{year}-W{week:02d}", monday, monday + timedelta(days=7))
    if period == MONTHLY:
        first, following = calendar_month(day)
        return BudgetWindow(first.strftime("%Y-%m"), first, following)
    if period == LIFETIME:
        return BudgetWindow("lifetime", None, None)
    raise ValueError(f"unknown budget period {period!r}")


def calendar_month(now: datetime) -> tuple[datetime, datetime]:
    """The UTC calendar month `now` (timezone-aware) falls in: its first instant and the next
    month's."""
    first = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return first, (first + timedelta(days=32)).replace(day=1)
