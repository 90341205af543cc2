"""The usage inbox: where the in-process recorder (proxy/gateway/recorder.py) makes usage events
durable before their answers end, and from which it folds them into records and charges.

Recording a batch costs much less per event in large batches (rollups, balances and budget
spend are a few statements per batch, whatever its size), but an answer that waits for its
event to be recorded caps the batch at the requests in flight. So the durable step is one row
per event (`inbox_append`), and the recording takes them later, hundreds at a time, deleting
them in its own transaction (`inbox_fold`): an event is recorded once, whatever dies when. What
a process left (it stopped or died between the two steps) is folded by the next recorder that
looks (`inbox_left`).
"""

# S608: the statement is built from the model's own table and column names; values are
# parameters.
# ruff: noqa: S608

import logging
from collections.abc import Sequence
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from billing.events import UsageEvent
from billing.models import UsageInbox
from billing.recording import record_events
from billing.reservations import RecordedBatch

logger = logging.getLogger("billing.services")

IN_CHUNK = 500  # ids per IN (...): well under SQLite's and PostgreSQL's parameter limits


def inbox_append(events: Sequence[UsageEvent]) -> None:
    """Write the events, in one transaction (an event written before is left as it is)."""
    quote = connection.ops.quote_name
    table = quote(UsageInbox._meta.db_table)
    columns = ", ".join(quote(name) for name in ("event_id", "event", "written_at"))
    written_at = connection.ops.adapt_datetimefield_value(timezone.now())
    rows = [(event.event_id, event.to_json().decode(), written_at) for event in events]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} ({columns}) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING", rows
        )


def inbox_fold(events: Sequence[UsageEvent]) -> RecordedBatch:
    """Record the events (billing/recording.py) and take them out of the inbox, at once."""
    with transaction.atomic():
        batch = record_events(events)
        ids = [event.event_id for event in events]
        for start in range(0, len(ids), IN_CHUNK):
            UsageInbox.objects.filter(event_id__in=ids[start : start + IN_CHUNK]).delete()
    return batch


def inbox_left(*, written_before: datetime, limit: int) -> list[UsageEvent]:
    """Events written before `written_before` and not yet folded, oldest first."""
    rows = (
        UsageInbox.objects.filter(written_at__lt=written_before)
        .order_by("written_at")
        .values_list("event_id", "event")[:limit]
    )
    events = []
    for event_id, raw in rows:
        try:
            events.append(UsageEvent.from_json(raw))
        except (KeyError, TypeError, ValueError) as exc:  # kept for an operator, never guessed
            logger.error("usage inbox: event %s is unreadable (%s); left in place", event_id, exc)
    return events
