"""Charges made the way the metering consumer makes them: usage events recorded through
billing.services.usage_events_record."""

import itertools
import uuid
from datetime import datetime
from decimal import Decimal

from billing.events import UsageEvent
from billing.services import RecordedBatch, usage_events_record
from billing.usage import Usage

_numbers = itertools.count()


def usage_event(
    *,
    account_id: int,
    cost: str,
    started_at: datetime,
    key_id: int | None = None,
    model: str = "GPT-4o",
    provider: str = "openai",
) -> UsageEvent:
    number = next(_numbers)
    return UsageEvent(
        event_id=f"evt-{uuid.uuid4().hex}",
        request_id=f"req-{number}",
        endpoint="chat.completions",
        key_id=key_id,
        account_id=account_id,
        card_id=3,
        model=model,
        provider=provider,
        upstream_model=model.lower(),
        credential_id=1,
        status=200,
        error_code=None,
        stream=False,
        usage=Usage(uncached_input=1000, output=200),
        cost=Decimal(cost),
        started_at=started_at.timestamp(),
        latency_ms=120.5,
        ttfb_ms=40.0,
        attempts=1,
    )


def charge(
    *,
    account_id: int,
    cost: str,
    started_at: datetime,
    key_id: int | None = None,
    model: str = "GPT-4o",
) -> RecordedBatch:
    """Record one request of `cost` US dollars started at `started_at`, and charge it."""
    event = usage_event(
        account_id=account_id, cost=cost, started_at=started_at, key_id=key_id, model=model
    )
    return usage_events_record(events=[event])
