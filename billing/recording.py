"""Recording a batch of usage events in plain SQL: the body of
billing.services.usage_events_record, in the caller's transaction.

The same rows the ORM would write (tests/billing/test_recording_conformance.py holds it to the
ORM version this replaced), for a fraction of its cost: records and charges go in as tuples
through one `executemany` each, and the balances, budget spends and rollups a batch touches
are read, summed in Python (SQLite would add decimals as floats) and written back with a
constant number of statements per batch, whatever its size (billing/recording_totals.py).
Values go through the backend's own adapters and come back through Django's own converters
(billing/sql_rows.py), so SQLite and PostgreSQL store and read exactly what the ORM does.

Locking is the ORM version's, on PostgreSQL: new rows are inserted sorted (ON CONFLICT DO
NOTHING: an insert that meets another writer's uncommitted row waits for it), then every row
is locked in one ORDER BY, then updated. So two writers never wait on each other in a cycle.
"""

# S608: the statements are built from the models' own table and column names, quoted by the
# backend; every value is a parameter.

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from billing.events import UsageEvent
from billing.histograms import histogram_bucket
from billing.models import (
    RESPONSE_ID_LENGTH,
    EntryKind,
    LedgerEntry,
    UsageRecord,
)
from billing.money import charge_for
from billing.periods import DAILY, LIFETIME, MONTHLY, WEEKLY, budget_window
from billing.recording_totals import Sums, balances_add, budget_spend_add, by_period, rollups_add
from billing.reservations import RecordedBatch
from billing.rollups import NO_KEY
from billing.sql_rows import insert, json_adapter, select_in, time_adapter

logger = logging.getLogger("billing.services")

BUDGET_PERIODS = (DAILY, WEEKLY, MONTHLY, LIFETIME)

RECORD_FIELDS = (
    "event_id",
    "request_id",
    "account_id",
    "key_id",
    "card_id",
    "credential_id",
    "endpoint",
    "model",
    "provider",
    "status",
    "error_code",
    "stream",
    "client_disconnected",
    "uncached_input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "estimated",
    "cache_write_1h_tokens",
    "service_tier",
    "server_tool_calls",
    "cost",
    "charged",
    "started_at",
    "latency_us",
    "ttfb_us",
    "attempts",
    "upstream_request_id",
    "response_id",
    "attempt_log",
)
CHARGE_FIELDS = (
    "account_id",
    "amount",
    "kind",
    "event_id",
    "request_id",
    "note",
    "created_by_id",
    "created_at",
)


def _attempt_log(event: UsageEvent) -> list[dict[str, Any]]:
    # Spelled out: dataclasses.asdict deep-copies, at several microseconds a record.
    return [
        {
            "credential_id": attempt.credential_id,
            "started_ms": attempt.started_ms,
            "duration_ms": attempt.duration_ms,
            "status": attempt.status,
            "error_code": attempt.error_code,
        }
        for attempt in event.attempt_log
    ]


def record_events(events: Sequence[UsageEvent]) -> RecordedBatch:
    """usage_events_record's work; the caller holds the transaction."""
    with connection.cursor() as cursor:
        ids = [event.event_id for event in events]
        known = set(select_in(cursor, UsageRecord, "event_id", "event_id", ids))
        user = get_user_model()
        accounts = set(
            select_in(
                cursor,
                user,
                user._meta.pk.column,
                user._meta.pk.column,
                {event.account_id for event in events if event.account_id is not None},
            )
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

        adapt_time = time_adapter()
        tools_json = json_adapter(UsageRecord, "server_tool_calls")
        attempts_json = json_adapter(UsageRecord, "attempt_log")
        now = adapt_time(timezone.now())
        records: list[tuple[Any, ...]] = []
        charges: list[tuple[Any, ...]] = []
        spent: dict[int, Decimal] = defaultdict(Decimal)
        key_spent: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
        accounts_of_keys: dict[int, int] = {}
        minutes: dict[tuple[int, datetime, int, str, str], Sums] = {}
        windows: dict[Any, list[str]] = {}
        # By event id: two writers given overlapping batches meet on the same first event
        # (the later waits, then fails on the unique id and is redelivered), never in a cycle.
        for event_id in sorted(fresh):
            account_id, event = fresh[event_id]
            usage = event.usage
            charge = charge_for(event.cost)
            started = datetime.fromtimestamp(event.started_at, UTC)
            latency_us = round(event.latency_ms * 1000)
            ttfb_us = None if event.ttfb_ms is None else round(event.ttfb_ms * 1000)
            model = event.model[:200]
            provider = event.provider or ""
            error_code = event.error_code or ""
            records.append(
                (
                    event_id,
                    event.request_id,
                    account_id,
                    event.key_id,
                    event.card_id,
                    event.credential_id,
                    event.endpoint,
                    model,
                    provider,
                    event.status,
                    error_code,
                    event.stream,
                    event.client_disconnected,
                    usage.uncached_input,
                    usage.cache_read,
                    usage.cache_write,
                    usage.output,
                    usage.reasoning,
                    usage.estimated,
                    usage.cache_write_1h,
                    (usage.service_tier or "")[:32],
                    tools_json(dict(usage.server_tools)),
                    event.cost,
                    charge,
                    adapt_time(started),
                    latency_us,
                    ttfb_us,
                    event.attempts,
                    event.upstream_request_id or "",
                    (event.response_id or "")[:RESPONSE_ID_LENGTH],
                    attempts_json(_attempt_log(event)),
                )
            )
            status_class = event.status // 100
            counts = (
                1,
                status_class == 2,
                status_class == 4,
                status_class == 5,
                error_code == "client_disconnected",
                error_code == "cancelled",
                event.stream,
                usage.uncached_input,
                usage.cache_read,
                usage.cache_write,
                usage.output,
                usage.reasoning,
            )
            latency_bucket = histogram_bucket(latency_us)
            ttfb_bucket = None if ttfb_us is None else histogram_bucket(ttfb_us)
            key_id = NO_KEY if event.key_id is None else event.key_id
            # Summed by minute here; the hours and days are added up from the minutes below.
            minute = (account_id, started.replace(second=0, microsecond=0), key_id, model, provider)
            sums = minutes.get(minute)
            if sums is None:
                sums = minutes[minute] = Sums()
            sums.add(counts, event.cost, charge, latency_bucket, ttfb_bucket)
            if not charge:
                continue
            charges.append(
                (
                    account_id,
                    -charge,
                    EntryKind.CHARGE.value,
                    event_id,
                    event.request_id,
                    "",
                    None,
                    now,
                )
            )
            spent[account_id] += charge
            if event.key_id is not None:
                accounts_of_keys[event.key_id] = account_id
                day = started.date()
                names = windows.get(day)
                if names is None:
                    names = windows[day] = [budget_window(p, started).name for p in BUDGET_PERIODS]
                for name in names:
                    key_spent[event.key_id, name] += charge

        insert(cursor, UsageRecord, RECORD_FIELDS, records)
        insert(cursor, LedgerEntry, CHARGE_FIELDS, charges)
        balances = balances_add(cursor, spent, now)
        spends = budget_spend_add(cursor, key_spent, accounts_of_keys)
        rollups_add(cursor, by_period(minutes))
    return RecordedBatch(len(records), dict(settled), balances, spends, accounts_of_keys)
