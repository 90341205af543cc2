"""Reads of the ledger, balances, spend and usage rollups."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from django.db.models import BigIntegerField, Count, F, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Cast, Round

from billing.models import (
    Balance,
    BudgetSpend,
    EntryKind,
    LedgerEntry,
    UsageRecord,
    UsageRollup,
)
from billing.money import LEDGER_PLACES
from billing.rollups import NO_KEY, period_start, rollup_empty, rollup_merge

LEDGER_PAGE_SIZE = 50


def balance_get(*, account_id: int) -> Decimal:
    """The account's materialised balance (zero before its first entry)."""
    amount = Balance.objects.filter(account_id=account_id).values_list("amount", flat=True).first()
    return amount if amount is not None else Decimal(0)


def ledger_sum(*, account_id: int) -> Decimal:
    """The sum of the account's ledger, which the balance must always equal."""
    total = LedgerEntry.objects.filter(account_id=account_id).aggregate(total=Sum("amount"))
    return total["total"] if total["total"] is not None else Decimal(0)


def _ledger(account_id: int) -> "QuerySet[LedgerEntry]":
    # Newest first by id: ids grow as entries are appended, so a page boundary is one id.
    return LedgerEntry.objects.filter(account_id=account_id).order_by("-id")


def ledger_page(
    *, account_id: int, before: int | None = None, size: int = LEDGER_PAGE_SIZE
) -> tuple[list[LedgerEntry], int | None]:
    """One page of the account's ledger, newest first, from just before entry `before`
    (keyset pagination: as fast on the thousandth page as on the first), and the cursor of the
    next page (None on the last)."""
    entries = _ledger(account_id)
    if before is not None:
        entries = entries.filter(id__lt=before)
    page = list(entries[: size + 1])
    more = len(page) > size
    page = page[:size]
    return page, (page[-1].id if more else None)


def ledger_rows(*, account_id: int) -> Iterator[LedgerEntry]:
    """Every entry of the account's ledger, newest first, read in chunks (for the export)."""
    return _ledger(account_id).iterator(chunk_size=2000)


@dataclass(frozen=True, slots=True)
class MoneySnapshot:
    """An account's balance and one key's spend in one budget window, read at one instant."""

    balance: Decimal
    credit_limit: Decimal
    version: int  # Balance.version: orders snapshots of the same account
    spent: Decimal  # in the window; zero when no window was asked for


def money_snapshot(*, account_id: int, key_id: int, window: str | None) -> MoneySnapshot:
    """One statement, so the balance, its version and the spend agree (one snapshot of the
    database even under READ COMMITTED)."""
    spend = BudgetSpend.objects.filter(key_id=key_id, window_name=window or "").values("amount")
    row = (
        Balance.objects.filter(account_id=account_id)
        .annotate(spent=Subquery(spend[:1]))
        .values_list("amount", "credit_limit", "version", "spent")
        .first()
    )
    if row is None:  # no balance row yet: nothing was ever credited or charged
        return MoneySnapshot(Decimal(0), Decimal(0), 0, Decimal(0))
    amount, credit_limit, version, spent = row
    return MoneySnapshot(amount, credit_limit, version, spent if spent is not None else Decimal(0))


def budget_spent(*, key_ids: list[int], windows: list[str]) -> dict[tuple[int, str], Decimal]:
    """What keys were charged in budget windows: (key id, window name) -> amount (absent: 0)."""
    rows = BudgetSpend.objects.filter(key_id__in=key_ids, window_name__in=windows)
    return {(row.key_id, row.window_name): row.amount for row in rows}


def usage_rollups(
    *,
    account_id: int,
    period: str,
    since: datetime,
    until: datetime,
    key_id: int | None = None,
    model: str | None = None,
) -> "QuerySet[UsageRollup]":
    """The account's rollups of one period ("minute", "hour", "day") starting in
    [since, until), oldest first; a key (0: requests without one) or a model narrows them."""
    rows = UsageRollup.objects.filter(
        account_id=account_id, period=period, starts_at__gte=since, starts_at__lt=until
    )
    if key_id is not None:
        rows = rows.filter(key_id=key_id)
    if model is not None:
        rows = rows.filter(model=model)
    return rows.order_by("starts_at", "key_id", "model", "provider")


def usage_series(
    *,
    account_id: int,
    period: str,
    since: datetime,
    until: datetime,
    key_id: int | None = None,
    model: str | None = None,
) -> list[UsageRollup]:
    """One point per period start that had requests, oldest first: the rollups of that start
    summed (histograms too, so percentiles hold for the point). The points are unsaved rows;
    their key and model are the filter's (NO_KEY and "" when not narrowed)."""
    points: dict[datetime, UsageRollup] = {}
    rows = usage_rollups(
        account_id=account_id,
        period=period,
        since=since,
        until=until,
        key_id=key_id,
        model=model,
    )
    for row in rows.iterator(chunk_size=2000):
        start = period_start(period, row.starts_at)
        point = points.get(start)
        if point is None:
            key = (account_id, period, start, NO_KEY if key_id is None else key_id, model or "", "")
            point = points[start] = rollup_empty(key)
        rollup_merge(point, row)
    return list(points.values())


def usage_total(points: Iterable[UsageRollup]) -> UsageRollup | None:
    """The sum of rollups or points (say a day's series, for its p95), or None for none; its
    start is the first one's."""
    total: UsageRollup | None = None
    for point in points:
        if total is None:
            key = (point.account_id, point.period, point.starts_at, point.key_id, point.model, "")
            total = rollup_empty(key)
        rollup_merge(total, point)
    return total


@dataclass(frozen=True, slots=True)
class AccountMoney:
    balance: Decimal
    credit_limit: Decimal  # how far below zero a postpaid balance may go

    @property
    def available(self) -> Decimal:
        """What requests may still spend in postpaid mode."""
        return self.balance + self.credit_limit


def account_money(*, account_id: int) -> AccountMoney:
    row = (
        Balance.objects.filter(account_id=account_id).values_list("amount", "credit_limit").first()
    )
    return AccountMoney(*row) if row is not None else AccountMoney(Decimal(0), Decimal(0))


@dataclass(frozen=True, slots=True)
class SpendLine:
    """What one model, or one key, was charged in a span of time."""

    group: str | int | None  # the model's title, or the key's id (None: no key)
    requests: int
    charged: Decimal


# Sums are taken in whole nano-dollars (the ledger's unit): exact on PostgreSQL and on SQLite,
# whose SUM over decimals would add floats.
_NANOS = Decimal(10) ** LEDGER_PLACES
_charged_nanos = Cast(Round(F("charged") * _NANOS), BigIntegerField())


def usage_spend(
    *, account_id: int, by: Literal["model", "key_id"], since: datetime, until: datetime
) -> list[SpendLine]:
    """The account's charges for requests started in [since, until), grouped by model or by
    key, largest first (one grouped query). Each line equals the sum of the ledger's charges
    for those requests: a record's `charged` is its ledger entry's amount."""
    rows = (
        UsageRecord.objects.filter(
            account_id=account_id, started_at__gte=since, started_at__lt=until
        )
        .values(by)
        .annotate(requests=Count("pk"), nanos=Sum(_charged_nanos))
        .order_by()
    )
    lines = [
        SpendLine(row[by], row["requests"], Decimal(row["nanos"] or 0).scaleb(-LEDGER_PLACES))
        for row in rows
    ]
    return sorted(lines, key=lambda line: (-line.charged, str(line.group)))


@dataclass(frozen=True, slots=True)
class LowBalance:
    account_id: int
    balance: Decimal
    topup_id: int  # the account's latest top-up: each one starts a new low-balance window


def low_balances(*, below: Decimal) -> list[LowBalance]:
    """Accounts whose balance is below `below` and was ever topped up (one never funded did
    not fall), each with its latest top-up (one query)."""
    latest = (
        LedgerEntry.objects.filter(account_id=OuterRef("account_id"), kind=EntryKind.TOPUP)
        .order_by("-id")
        .values("id")[:1]
    )
    rows = (
        Balance.objects.filter(amount__lt=below)
        .annotate(topup_id=Subquery(latest))
        .filter(topup_id__isnull=False)
        .values_list("account_id", "amount", "topup_id")
    )
    # Compared again in Decimal: SQLite compares its decimals as floats.
    return [LowBalance(*row) for row in rows if row[1] < below]


def generation_get(*, account_id: int, generation_id: str) -> UsageRecord | None:
    """The account's record whose event id, or whose answer's body `id`, is `generation_id`
    (GET /v1/generation); None for an id of another account's request or no request at all.

    Body ids come from the upstreams and need not be unique: the newest record wins. Records
    are written asynchronously, so a request just answered may not be found yet.
    """
    if not generation_id:
        return None
    mine = UsageRecord.objects.filter(account_id=account_id)
    record = mine.filter(event_id=generation_id).first()
    if record is None:
        record = mine.filter(response_id=generation_id).order_by("-started_at", "-id").first()
    return record
