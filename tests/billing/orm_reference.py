"""The ORM version of billing.services.usage_events_record, as it was before the plain-SQL
one (billing/recording.py) replaced it: kept here, verbatim but for its name, so
test_recording_conformance.py can hold the new one to the same rows."""

import dataclasses
import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q

from billing.events import UsageEvent
from billing.histograms import histogram_bucket
from billing.models import (
    BudgetSpend,
    EntryKind,
    LedgerEntry,
    RollupPeriod,
    UsageRecord,
    UsageRollup,
)
from billing.money import charge_for
from billing.periods import DAILY, LIFETIME, MONTHLY, WEEKLY, budget_window
from billing.reservations import RecordedBatch
from billing.rollups import (
    LOCK_ORDER,
    NO_KEY,
    SUMMED,
    RollupKey,
    period_start,
    rollup_empty,
    rollup_merge,
)
from billing.services import _balance_add

logger = logging.getLogger(__name__)

BUDGET_PERIODS = (DAILY, WEEKLY, MONTHLY, LIFETIME)


def orm_usage_events_record(*, events: Sequence[UsageEvent]) -> RecordedBatch:
    """Record a batch of usage events and charge them, in one transaction. Idempotent on the
    event id: events recorded before are skipped, so a batch that is delivered again (a
    consumer that died before acknowledging it) changes nothing."""
    with transaction.atomic():
        ids = [event.event_id for event in events]
        known = set(UsageRecord.objects.filter(event_id__in=ids).values_list("event_id", flat=True))
        accounts = set(
            get_user_model()
            .objects.filter(pk__in={event.account_id for event in events})
            .values_list("pk", flat=True)
        )
        fresh: dict[str, tuple[int, UsageEvent]] = {}
        settled: dict[int, list[str]] = defaultdict(list)
        for event in events:
            if event.account_id is not None and (
                event.event_id in known or event.account_id in accounts
            ):
                settled[event.account_id].append(event.event_id)
            if event.event_id in known:
                continue
            if event.account_id not in accounts or event.account_id is None:
                # Deleted while its request was in flight: nothing left to charge. Said loudly,
                # and skipped, so one such event cannot hold back the batch around it.
                logger.error("usage event %s: account %s is gone", event.event_id, event.account_id)
                continue
            fresh.setdefault(event.event_id, (event.account_id, event))  # twice in a batch
        if not fresh:
            return RecordedBatch(0, dict(settled), {}, {}, {})
        records, charges = [], []
        spent: dict[int, Decimal] = defaultdict(Decimal)
        key_spent: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
        accounts_of_keys: dict[int, int] = {}
        for account_id, event in fresh.values():
            charge = charge_for(event.cost)
            records.append(_usage_record(event, account_id, charge))
            if charge:
                charges.append(
                    LedgerEntry(
                        account_id=account_id,
                        amount=-charge,
                        kind=EntryKind.CHARGE,
                        event_id=event.event_id,
                        request_id=event.request_id,
                    )
                )
                spent[account_id] += charge
                if event.key_id is not None:
                    accounts_of_keys[event.key_id] = account_id
                    started = datetime.fromtimestamp(event.started_at, UTC)
                    for period in BUDGET_PERIODS:
                        key_spent[event.key_id, budget_window(period, started).name] += charge
        # By event id: two consumers given overlapping batches meet on the same first event
        # (the later waits, then fails on the unique id and is redelivered), never in a cycle.
        records.sort(key=lambda record: record.event_id)
        charges.sort(key=lambda charge: charge.event_id)
        UsageRecord.objects.bulk_create(records)
        LedgerEntry.objects.bulk_create(charges)
        balances = {
            account_id: _balance_add(account_id, -spent[account_id])
            for account_id in sorted(spent)  # one order for every writer: no deadlocks
        }
        spends = _budget_spend_add(key_spent, accounts_of_keys)
        usage_rollups_add(records)
        return RecordedBatch(len(records), dict(settled), balances, spends, accounts_of_keys)


def _budget_spend_add(
    added: dict[tuple[int, str], Decimal], accounts_of_keys: dict[int, int]
) -> dict[tuple[int, str], Decimal]:
    """Add to the keys' spend in each window; the rows locked in one order, sums in Python."""
    if not added:
        return {}
    BudgetSpend.objects.bulk_create(
        [
            BudgetSpend(key_id=key_id, window_name=window, account_id=accounts_of_keys[key_id])
            for key_id, window in added
        ],
        ignore_conflicts=True,
    )
    keys = {key_id for key_id, _ in added}
    rows = [
        row
        for row in BudgetSpend.objects.select_for_update()
        .filter(key_id__in=keys, window_name__in={window for _, window in added})
        .order_by("key_id", "window_name")
        if (row.key_id, row.window_name) in added
    ]
    for row in rows:
        row.amount += added[row.key_id, row.window_name]
    BudgetSpend.objects.bulk_update(rows, ["amount"])
    return {(row.key_id, row.window_name): row.amount for row in rows}


def _usage_record(event: UsageEvent, account_id: int, charge: Decimal) -> UsageRecord:
    usage = event.usage
    return UsageRecord(
        event_id=event.event_id,
        request_id=event.request_id,
        account_id=account_id,
        key_id=event.key_id,
        card_id=event.card_id,
        credential_id=event.credential_id,
        endpoint=event.endpoint,
        model=event.model[:200],
        provider=event.provider or "",
        status=event.status,
        error_code=event.error_code or "",
        stream=event.stream,
        client_disconnected=event.client_disconnected,
        uncached_input_tokens=usage.uncached_input,
        cache_read_tokens=usage.cache_read,
        cache_write_tokens=usage.cache_write,
        output_tokens=usage.output,
        reasoning_tokens=usage.reasoning,
        estimated=usage.estimated,
        cache_write_1h_tokens=usage.cache_write_1h,
        service_tier=(usage.service_tier or "")[:32],
        server_tool_calls=dict(usage.server_tools),
        cost=event.cost,
        charged=charge,
        started_at=datetime.fromtimestamp(event.started_at, UTC),
        latency_us=round(event.latency_ms * 1000),
        ttfb_us=None if event.ttfb_ms is None else round(event.ttfb_ms * 1000),
        attempts=event.attempts,
        upstream_request_id=event.upstream_request_id or "",
        response_id=(event.response_id or "")[:128],
        attempt_log=[dataclasses.asdict(attempt) for attempt in event.attempt_log],
    )


# The ORM version of the rollup writer (billing/rollups.py's arithmetic, rows locked in
# LOCK_ORDER), for the conformance test only.

# Rows per UPDATE: bulk_update writes one CASE per field over every row of a statement.
UPDATE_BATCH = 200


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
