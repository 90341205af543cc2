"""Helpers for the rollup tests: usage events to record, and the rollups the records imply,
summed here independently of billing/rollups.py."""

import itertools
import time
from collections import defaultdict
from datetime import UTC
from decimal import Decimal
from typing import Any

from billing.events import UpstreamAttempt, UsageEvent
from billing.histograms import histogram_bucket, histogram_empty
from billing.models import RollupPeriod, UsageRecord, UsageRollup
from billing.usage import Usage

_ids = itertools.count()
# 2026-11-30 23:58:30 UTC: a batch a few minutes wide crosses a minute, an hour and a day.
BASE = 1_796_083_110
SUMS = (
    "requests",
    "status_2xx",
    "status_4xx",
    "status_5xx",
    "client_disconnected",
    "cancelled",
    "streamed",
    "uncached_input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost",
    "charged",
    "latency_histogram",
    "ttfb_histogram",
)


def usage_event(account_id: int, **changes: Any) -> UsageEvent:
    number = next(_ids)
    fields: dict[str, Any] = {
        "event_id": f"evt-{time.time_ns()}-{number}",
        "request_id": f"req-{number}",
        "endpoint": "chat.completions",
        "key_id": 7,
        "account_id": account_id,
        "card_id": 3,
        "model": "GPT-4o",
        "provider": "openai",
        "upstream_model": "gpt-4o",
        "credential_id": 1,
        "status": 200,
        "error_code": None,
        "stream": False,
        "usage": Usage(
            uncached_input=1200, cache_read=300, cache_write=20, output=450, reasoning=50
        ),
        "cost": Decimal("0.004537500001"),
        "started_at": BASE + 0.25,
        "latency_ms": 812.345,
        "ttfb_ms": 95.5,
        "attempts": 1,
        "response_id": f"chatcmpl-{number}",
    }
    fields.update(changes)
    return UsageEvent(**fields)


def varied_events(account_ids: list[int], count: int) -> list[UsageEvent]:
    """Events over several keys, models, statuses and minutes, some without a key or a ttfb."""
    statuses = [(200, None), (200, "client_disconnected"), (429, "rate_limited"), (502, None)]
    events = []
    for n in range(count):
        status, code = statuses[n % len(statuses)]
        events.append(
            usage_event(
                account_ids[n % len(account_ids)],
                key_id=None if n % 11 == 0 else 7 + n % 3,
                model=("GPT-4o", "Claude Sonnet 4.5")[n % 2],
                provider=("openai", "anthropic")[n % 2],
                status=status,
                error_code="cancelled" if n % 13 == 0 else code,
                client_disconnected=code == "client_disconnected",
                stream=n % 3 == 0,
                usage=Usage(uncached_input=n * 7, cache_read=n % 5, output=n, reasoning=n % 2),
                cost=Decimal(n).scaleb(-12) + Decimal("0.000001"),
                started_at=BASE + n * 1.7,
                latency_ms=0.5 + n * 37.1,
                ttfb_ms=None if n % 4 == 3 else 0.2 + n,
                attempt_log=_attempts(n),
            )
        )
    return events


def _attempts(n: int) -> tuple[UpstreamAttempt, ...]:
    """None, one, or a failover's two."""
    used = UpstreamAttempt(1, 0.25, 10.5 + n, 200, None)
    if n % 5 == 0:
        return ()
    if n % 5 == 1:
        return (UpstreamAttempt(2, 0.125, 3.5, None, "upstream_unreachable"), used)
    return (used,)


def rollup_values(row: Any) -> tuple[Any, ...]:
    return tuple(getattr(row, name) for name in SUMS)


def rollups_in_db() -> dict[tuple[Any, ...], tuple[Any, ...]]:
    return {
        (r.account_id, r.period, r.starts_at.astimezone(UTC), r.key_id, r.model, r.provider): (
            rollup_values(r)
        )
        for r in UsageRollup.objects.all()
    }


def rollups_of_records() -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """What every rollup must hold: the records summed, independently of billing/rollups.py."""
    truncate = {
        RollupPeriod.MINUTE: {"second": 0, "microsecond": 0},
        RollupPeriod.HOUR: {"minute": 0, "second": 0, "microsecond": 0},
        RollupPeriod.DAY: {"hour": 0, "minute": 0, "second": 0, "microsecond": 0},
    }
    sums: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(
        lambda: {
            **dict.fromkeys(SUMS, 0),
            "cost": Decimal(0),
            "charged": Decimal(0),
            "latency_histogram": histogram_empty(),
            "ttfb_histogram": histogram_empty(),
        }
    )
    for record in UsageRecord.objects.all():
        for period, fields in truncate.items():
            start = record.started_at.astimezone(UTC).replace(**fields)
            key = (record.account_id, period.value, start, record.key_id or 0, record.model)
            row = sums[(*key, record.provider)]
            row["requests"] += 1
            row[f"status_{record.status // 100}xx"] = (
                row.get(f"status_{record.status // 100}xx", 0) + 1
            )
            row["client_disconnected"] += record.error_code == "client_disconnected"
            row["cancelled"] += record.error_code == "cancelled"
            row["streamed"] += record.stream
            for name in SUMS[7:14]:
                row[name] += getattr(record, name)
            row["latency_histogram"][histogram_bucket(record.latency_us)] += 1
            if record.ttfb_us is not None:
                row["ttfb_histogram"][histogram_bucket(record.ttfb_us)] += 1
    return {key: tuple(row[name] for name in SUMS) for key, row in sums.items()}
