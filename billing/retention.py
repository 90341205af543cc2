"""Retention of usage records: records older than TOKENBYTE_USAGE_RETENTION_DAYS are deleted
(the hourly beat task billing.usage_retention), oldest first, in bounded batches, each its own
short statement, so no run holds locks for long or grows the WAL without bound. Rollups,
ledger entries (which keep each charge's event and request id) and balances are kept.

Partitioning, for when even batched deletes cost too much (not done here): in PostgreSQL,
UsageRecord becomes a table PARTITION BY RANGE (started_at), one partition per day or month,
created ahead of time by this task (or pg_partman), and retention becomes DETACH / DROP
PARTITION: instant, no dead rows, no vacuum. What changes:
- A unique constraint on a partitioned table must include the partition key. Either the key
  becomes (event_id, started_at), which dedupes as well because a redelivered event carries
  the same started_at (the event is immutable; usage_events_record then looks known events up
  by both), or event ids go to a small unpartitioned dedupe table (event_id primary key,
  started_at), inserted in the same transaction and pruned by this task after the records.
  The ledger's one-charge-per-event constraint stays as it is: it is not partitioned.
- The primary key becomes (id, started_at) (Django 5.2's CompositePrimaryKey), and nothing may
  point at a record by id alone (nothing does: charges name the event id).
- Lookups by request id (logs, /v1/generation) visit every partition's index unless they are
  also bounded in time (a request id could carry its start, or searches take a date range).
- The table is created by a PostgreSQL-only RunSQL migration (rows copied over); SQLite keeps
  the plain table and these batched deletes.

Stored bodies (body logging) have a retention of their own, shorter by default
(TOKENBYTE_BODY_RETENTION_DAYS, the hourly task billing.usage_bodies_retention; in embedded
mode the gateway's body log runs it): `usage_bodies_prune`, in the same bounded batches. So do
stored responses (TOKENBYTE_RESPONSE_RETENTION_DAYS, billing.stored_responses_retention; in
embedded mode the gateway runs it beside the bodies' pruning): `stored_responses_prune`.
"""

from datetime import datetime, timedelta

from django.db import models

from billing.body_models import UsageBody
from billing.models import UsageRecord
from billing.response_models import StoredResponse

BATCH_SIZE = 5000  # ids per DELETE
MAX_BATCHES = 200  # per run: 1,000,000 records an hour; a larger backlog takes more runs
BODY_BATCH_SIZE = 1000  # bodies are up to 2 x TOKENBYTE_BODY_LOG_MAX_BYTES a row
RESPONSE_BATCH_SIZE = 1000  # a stored response's items go with it


def _prune_oldest(
    model: type[models.Model], field: str, cutoff: datetime, batch_size: int, max_batches: int
) -> int:
    """Delete the model's rows whose `field` is before `cutoff`, oldest first, at most
    `batch_size` per statement and `max_batches` statements; returns how many."""
    deleted = 0
    for _ in range(max_batches):
        oldest = (
            model._default_manager.filter(**{f"{field}__lt": cutoff})
            .order_by(field)
            .values("pk")[:batch_size]
        )
        # One DELETE ... WHERE id IN (SELECT id ... LIMIT n): no ids travel where nothing
        # cascades (a stored response's items do: Django deletes them by the batch's ids).
        count = model._default_manager.filter(pk__in=oldest).delete()[1].get(model._meta.label, 0)
        deleted += count
        if count < batch_size:
            break
    return deleted


def usage_records_prune(
    *,
    now: datetime,
    days: int,
    batch_size: int = BATCH_SIZE,
    max_batches: int = MAX_BATCHES,
) -> int:
    """Delete the usage records that started more than `days` before `now` (0: keep them
    all), at most `batch_size` per statement and `max_batches` statements; returns how many."""
    if days <= 0:
        return 0
    return _prune_oldest(
        UsageRecord, "started_at", now - timedelta(days=days), batch_size, max_batches
    )


def usage_bodies_prune(
    *,
    now: datetime,
    days: int,
    batch_size: int = BODY_BATCH_SIZE,
    max_batches: int = MAX_BATCHES,
) -> int:
    """Delete the stored bodies (body logging) of calls that started more than `days` before
    `now` (0: keep them), oldest first, at most `batch_size` per statement and `max_batches`
    statements; their usage records are left to their own retention. Returns how many."""
    if days <= 0:
        return 0
    return _prune_oldest(
        UsageBody, "created_at", now - timedelta(days=days), batch_size, max_batches
    )


def stored_responses_prune(
    *,
    now: datetime,
    days: int,
    batch_size: int = RESPONSE_BATCH_SIZE,
    max_batches: int = MAX_BATCHES,
) -> int:
    """Delete the stored responses (POST /v1/responses with `store`) made more than `days`
    before `now` (0: keep them), with their items, oldest first; returns how many responses."""
    if days <= 0:
        return 0
    return _prune_oldest(
        StoredResponse, "created_at", now - timedelta(days=days), batch_size, max_batches
    )
