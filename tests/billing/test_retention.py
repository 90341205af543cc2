"""Retention: usage records past TOKENBYTE_USAGE_RETENTION_DAYS go, in bounded batches, oldest
first; rollups and the ledger stay."""

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from billing.models import LedgerEntry, UsageRecord
from billing.retention import usage_records_prune
from billing.services import usage_events_record
from billing.tasks import usage_retention
from tests.billing.rollup_checks import rollups_in_db, usage_event

pytestmark = pytest.mark.django_db
DAY = 86_400


def record_days_ago(account: User, *days: float) -> None:
    now = time.time()
    usage_events_record(events=[usage_event(account.pk, started_at=now - d * DAY) for d in days])


def test_only_records_past_the_retention_go_and_rollups_stay() -> None:
    alice = User.objects.create_user("a@example.com")
    record_days_ago(alice, 400, 91, 90.01, 89.99, 10, 0)
    rollups, charges = rollups_in_db(), LedgerEntry.objects.count()
    assert usage_records_prune(now=timezone.now(), days=90) == 3
    kept = UsageRecord.objects.order_by("started_at")
    assert [round((time.time() - r.started_at.timestamp()) / DAY) for r in kept] == [90, 10, 0]
    assert rollups_in_db() == rollups  # dashboards still show the deleted records' usage
    assert LedgerEntry.objects.count() == charges


def test_zero_days_keeps_records_forever() -> None:
    alice = User.objects.create_user("a@example.com")
    record_days_ago(alice, 5000, 400)
    assert usage_records_prune(now=timezone.now(), days=0) == 0
    assert UsageRecord.objects.count() == 2


def deletes_of(days: int, **bounds: int) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as captured:
        deleted = usage_records_prune(now=timezone.now(), days=days, **bounds)
    statements = [q["sql"] for q in captured.captured_queries if "DELETE" in q["sql"]]
    assert len(statements) == len(captured)  # nothing but the deletes: no ids fetched first
    return deleted, len(statements)


def test_a_run_deletes_in_bounded_batches_oldest_first() -> None:
    alice = User.objects.create_user("a@example.com")
    record_days_ago(alice, *[100 + n for n in range(23)], 1)
    assert deletes_of(90, batch_size=5, max_batches=3) == (15, 3)  # a backlog: the next run
    left = sorted(UsageRecord.objects.values_list("started_at", flat=True))
    assert len(left) == 9
    assert (datetime.now(UTC) - left[0]).days == 107  # the 15 oldest went first
    assert deletes_of(90, batch_size=5, max_batches=3) == (8, 2)  # stops at a short batch
    assert deletes_of(90, batch_size=5, max_batches=3) == (0, 1)
    assert UsageRecord.objects.count() == 1


def test_the_hourly_task_uses_the_setting(settings: Any) -> None:
    alice = User.objects.create_user("a@example.com")
    record_days_ago(alice, 91, 30)
    assert settings.TOKENBYTE_USAGE_RETENTION_DAYS == 90  # the default
    assert usage_retention() == 1
    schedule = settings.CELERY_BEAT_SCHEDULE["usage-retention"]
    assert (schedule["task"], schedule["schedule"]) == ("billing.usage_retention", 3600.0)


def test_the_task_keeps_everything_when_retention_is_off(settings: Any) -> None:
    settings.TOKENBYTE_USAGE_RETENTION_DAYS = 0
    alice = User.objects.create_user("a@example.com")
    record_days_ago(alice, 3650)
    assert usage_retention() == 0
    assert UsageRecord.objects.count() == 1
