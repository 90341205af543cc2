"""Reads of the request logs: one account's usage records, filtered, searched and paged.

Pages are keyset-paged on (started_at, id), newest first, so the thousandth page costs what
the first does: `WHERE account = ? AND started_at <= ? AND (started_at < ? OR id < ?)` walks
the index `usage_by_account` (account, started_at DESC, id DESC) from the cursor on. The
first conjunct is redundant for the result and there for the planner: it bounds the index
range, which an OR alone would not. Filters by key and by model have indexes of their own;
the others (status, latency, cost) filter the rows the walk meets. The search box never looks
for a substring in the records (see _searched).
"""

import base64
import functools
import operator
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import connection
from django.db.models import Q, QuerySet

from billing.body_log import usage_bodies_matching
from billing.models import RollupPeriod, UsageRecord, UsageRollup

PAGE_SIZE = 50
EXPORT_CHUNK = 2000  # rows fetched per round trip while exporting (server-side cursor on PG)


@dataclass(frozen=True)
class UsageFilters:
    """What /logs/ and its exports select; None (or empty) means no filter on that field."""

    since: datetime | None = None
    until: datetime | None = None  # exclusive
    key_id: int | None = None
    model: str = ""
    provider: str = ""
    status: str = ""  # "ok" (below 400), "error" (400 and above), "4xx", "5xx" or "429"
    error_code: str = ""
    stream: bool | None = None
    min_latency_ms: int | None = None
    min_cost: Decimal | None = None
    query: str = ""  # the search box: a request's ids exactly, else text (see _searched)
    key_ids_named: Collection[int] = field(default_factory=tuple)  # keys whose name matched
    # Whether the text is looked for in the account's stored bodies too (body logging).
    search_bodies: bool = False


@dataclass(frozen=True)
class UsagePage:
    records: list[UsageRecord]
    next_cursor: str | None  # for ?after= : the page after this one, older


def _status_q(status: str) -> Q | None:
    if status == "ok":
        return Q(status__lt=400)
    if status == "error":
        return Q(status__gte=400)
    if len(status) == 3 and status[0] in "12345" and status[1:] == "xx":
        low = int(status[0]) * 100
        return Q(status__gte=low, status__lt=low + 100)
    if status.isdigit() and len(status) == 3:
        return Q(status=int(status))
    return None


def _text_q(account_id: int, query: str, key_ids: Collection[int]) -> Q | None:
    """Text names models, error codes and keys, each a handful per account: matched here
    against the values the account has, so the records are then selected by exact values
    through their indexes rather than scanned for a substring. None: it names nothing."""
    needle = query.casefold()
    models, _ = usage_log_choices(account_id=account_id)
    named_models = [model for model in models if needle in model.casefold()]
    named_codes = [code for code in error_codes_used(account_id=account_id) if needle in code]
    arms = [
        Q(**{f"{column}__in": list(values)})
        for column, values in (
            ("model", named_models),
            ("error_code", named_codes),
            ("key_id", key_ids),
        )
        if values
    ]
    return functools.reduce(operator.or_, arms) if arms else None


def _searched(
    records: "QuerySet[UsageRecord]", account_id: int, filters: UsageFilters
) -> "QuerySet[UsageRecord]":
    """The search box: a request's own id (the unique one, the client's x-request-id, the
    answer's body id or the upstream's request id) finds it through its index; only text that
    names no request is matched against models, error codes and key names (_text_q). OR-ing
    the two would scan for every id."""
    query = filters.query
    by_id = records.filter(
        Q(event_id=query)
        | Q(request_id=query)
        | Q(response_id=query)
        | Q(upstream_request_id=query)
    )
    if by_id.exists():
        return by_id
    text = _text_q(account_id, query, filters.key_ids_named)
    if filters.search_bodies:  # the prompts and answers stored (billing/body_log.py)
        stored = usage_bodies_matching(account_id=account_id, text=query)
        if stored:  # exact ids: the records come by their index, as for the other arms
            text = Q(event_id__in=stored) if text is None else text | Q(event_id__in=stored)
    return records.filter(text) if text is not None else records.none()


def error_codes_used(*, account_id: int) -> list[str]:
    """The distinct error codes in the account's records: one probe of the partial index
    `usage_error_codes` per code (a loose index scan), not a pass over its errors. Both
    `> ''` are there for PostgreSQL's planner: they prove the index's `<> ''`."""
    table = UsageRecord._meta.db_table
    sql = f"""
        WITH RECURSIVE codes(code) AS (
            SELECT MIN(error_code) FROM {table} WHERE account_id = %s AND error_code > ''
            UNION ALL
            SELECT (SELECT MIN(error_code) FROM {table}
                    WHERE account_id = %s AND error_code > '' AND error_code > codes.code)
            FROM codes WHERE codes.code IS NOT NULL
        )
        SELECT code FROM codes WHERE code IS NOT NULL LIMIT 200
    """  # noqa: S608  # the table name is ours; the values are parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, [account_id, account_id])
        return [code for (code,) in cursor.fetchall()]


def usage_filtered(*, account_id: int, filters: UsageFilters) -> "QuerySet[UsageRecord]":
    """The account's records that pass `filters`, newest first (another account's never)."""
    records = UsageRecord.objects.filter(account_id=account_id)
    if filters.since is not None:
        records = records.filter(started_at__gte=filters.since)
    if filters.until is not None:
        records = records.filter(started_at__lt=filters.until)
    if filters.key_id is not None:
        records = records.filter(key_id=filters.key_id)
    if filters.model:
        records = records.filter(model=filters.model)
    if filters.provider:
        records = records.filter(provider=filters.provider)
    status = _status_q(filters.status)
    if status is not None:
        records = records.filter(status)
    if filters.error_code:
        records = records.filter(error_code=filters.error_code)
    if filters.stream is not None:
        records = records.filter(stream=filters.stream)
    if filters.min_latency_ms is not None:
        records = records.filter(latency_us__gte=filters.min_latency_ms * 1000)
    if filters.min_cost is not None:
        records = records.filter(cost__gte=filters.min_cost)
    if filters.query:
        records = _searched(records, account_id, filters)
    return records.order_by("-started_at", "-id")


def _encode(record: UsageRecord) -> str:
    raw = f"{record.started_at.isoformat()}|{record.pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_decode(text: str) -> tuple[datetime, int] | None:
    """A cursor from ?after=, or None for one this server did not make."""
    if not text or len(text) > 120:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        started, _, pk = raw.partition("|")
        moment = datetime.fromisoformat(started)
        if moment.tzinfo is None or not pk.isdigit():
            return None
        return moment, int(pk)
    except (ValueError, UnicodeDecodeError):
        return None


def usage_log_page(
    *,
    account_id: int,
    filters: UsageFilters,
    after: tuple[datetime, int] | None = None,
    size: int = PAGE_SIZE,
) -> UsagePage:
    """One page of the account's filtered records, older than the cursor `after`."""
    records = usage_filtered(account_id=account_id, filters=filters)
    if after is not None:
        moment, pk = after
        records = records.filter(started_at__lte=moment).filter(
            Q(started_at__lt=moment) | Q(id__lt=pk)
        )
    rows = list(records[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return UsagePage(rows, _encode(rows[-1]) if more and rows else None)


def usage_log_rows(*, account_id: int, filters: UsageFilters) -> Iterator[UsageRecord]:
    """Every filtered record, newest first, fetched in chunks (an export of millions of rows
    holds one chunk in memory). The JSON columns, which exports leave out, are not fetched."""
    records = usage_filtered(account_id=account_id, filters=filters)
    return records.defer("server_tool_calls", "attempt_log").iterator(chunk_size=EXPORT_CHUNK)


def usage_record_get(*, account_id: int, event_id: str) -> UsageRecord | None:
    """One of the account's records by its unique id; None for anyone else's."""
    return UsageRecord.objects.filter(account_id=account_id, event_id=event_id).first()


def usage_log_choices(*, account_id: int) -> tuple[list[str], list[str]]:
    """The models and providers the account has used (for the filters' menus), from the day
    rollups: a few rows per day, where the records are one per request."""
    days = UsageRollup.objects.filter(account_id=account_id, period=RollupPeriod.DAY)
    models = days.order_by("model").values_list("model", flat=True).distinct()[:500]
    providers = days.order_by("provider").values_list("provider", flat=True).distinct()[:50]
    return [m for m in models if m], [p for p in providers if p]
