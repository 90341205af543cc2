"""The plain-SQL recorder (billing/recording.py, behind usage_events_record) writes exactly the
rows the ORM version did (tests/billing/orm_reference.py): the same batches, replays included,
recorded through each path for two pairs of accounts and keys, compare equal row by row."""

from dataclasses import replace
from decimal import Decimal
from typing import Any

import orjson
import pytest

from accounts.models import User
from billing.events import UsageEvent
from billing.models import Balance, BudgetSpend, LedgerEntry, UsageRecord, UsageRollup
from billing.reservations import RecordedBatch
from billing.services import ledger_credit, usage_events_record
from tests.billing.orm_reference import orm_usage_events_record
from tests.billing.rollup_checks import varied_events

pytestmark = pytest.mark.django_db

KEY_OFFSET = 100  # the SQL path's keys: the ORM path's + 100 (budget spend is per key)


def _as_sql_path(event: UsageEvent, accounts: dict[int, int]) -> UsageEvent:
    return replace(
        event,
        event_id=f"sql-{event.event_id}",
        account_id=accounts[event.account_id] if event.account_id is not None else None,
        key_id=None if event.key_id is None else event.key_id + KEY_OFFSET,
    )


def _rows(accounts: list[int], back: dict[int, int]) -> dict[str, Any]:
    """Every row the recording wrote for `accounts`, with the SQL path's ids mapped back."""

    def account(pk: int) -> int:
        return back.get(pk, pk)

    def key(pk: int | None) -> int | None:
        return pk if pk is None or pk < KEY_OFFSET or not back else pk - KEY_OFFSET

    def event_id(value: str) -> str:
        return value.removeprefix("sql-")

    records = sorted(
        (
            event_id(r.event_id),
            r.request_id,
            account(r.account_id),
            key(r.key_id),
            r.card_id,
            r.credential_id,
            r.endpoint,
            r.model,
            r.provider,
            r.status,
            r.error_code,
            r.stream,
            r.client_disconnected,
            r.uncached_input_tokens,
            r.cache_read_tokens,
            r.cache_write_tokens,
            r.output_tokens,
            r.reasoning_tokens,
            r.estimated,
            r.cost,
            r.charged,
            r.started_at,
            r.latency_us,
            r.ttfb_us,
            r.attempts,
            r.upstream_request_id,
            r.response_id,
            orjson.dumps(r.attempt_log),
        )
        for r in UsageRecord.objects.filter(account_id__in=accounts)
    )
    ledger = sorted(
        (account(e.account_id), e.amount, e.kind, event_id(e.event_id), e.request_id, e.note)
        for e in LedgerEntry.objects.filter(account_id__in=accounts)
    )
    balances = sorted(
        (account(b.account_id), b.amount, b.credit_limit, b.version)
        for b in Balance.objects.filter(account_id__in=accounts)
    )
    spends = sorted(
        (key(s.key_id), s.window_name, account(s.account_id), s.amount)
        for s in BudgetSpend.objects.filter(account_id__in=accounts)
    )
    rollups = sorted(
        (
            account(r.account_id),
            r.period,
            r.starts_at,
            key(r.key_id),
            r.model,
            r.provider,
            r.requests,
            r.status_2xx,
            r.status_4xx,
            r.status_5xx,
            r.client_disconnected,
            r.cancelled,
            r.streamed,
            r.uncached_input_tokens,
            r.cache_read_tokens,
            r.cache_write_tokens,
            r.output_tokens,
            r.reasoning_tokens,
            r.cost,
            r.charged,
            r.latency_histogram,
            r.ttfb_histogram,
        )
        for r in UsageRollup.objects.filter(account_id__in=accounts)
    )
    return {
        "records": records,
        "ledger": ledger,
        "balances": balances,
        "spends": spends,
        "rollups": rollups,
    }


def _batch(batch: RecordedBatch, back: dict[int, int]) -> tuple[Any, ...]:
    def key(pk: int) -> int:
        return pk - KEY_OFFSET if back else pk

    return (
        batch.recorded,
        {
            back.get(a, a): sorted(i.removeprefix("sql-") for i in ids)
            for a, ids in batch.event_ids.items()
        },
        {back.get(a, a): state for a, state in batch.balances.items()},
        {(key(k), w): amount for (k, w), amount in batch.spends.items()},
        {key(k): back.get(a, a) for k, a in batch.accounts_of_keys.items()},
    )


def test_the_sql_recorder_writes_the_orm_recorders_rows() -> None:
    orm = [User.objects.create_user(f"orm{n}@example.com").pk for n in range(2)]
    sql = [User.objects.create_user(f"sql{n}@example.com").pk for n in range(2)]
    for pk in (*orm, *sql):  # a balance with history, so versions and sums are compared too
        ledger_credit(account=User.objects.get(pk=pk), amount=Decimal("12.5"))
    to_sql = dict(zip(orm, sql, strict=True))
    back = {v: k for k, v in to_sql.items()}
    events = varied_events(orm, 90)
    gone = replace(events[5], event_id="evt-gone", account_id=999_999)  # a deleted account
    batches = [events[:30], events[30:70], events[10:40], [*events[70:], events[70], gone]]

    for batch in batches:
        want = orm_usage_events_record(events=batch)
        got = usage_events_record(
            events=[_as_sql_path(e, to_sql | {999_999: 999_999}) for e in batch]
        )
        assert _batch(got, back) == _batch(want, {})

    assert _rows(sql, back) == _rows(orm, {})
    assert UsageRecord.objects.filter(account_id__in=sql).count() == 90
