"""Stored bodies in billing: their own retention (in bounded batches, oldest first, records
left alone), their Redis stream drained by billing's consumer (stored once, entries deleted,
unreadable ones dropped), and on PostgreSQL the search of them served by the trigram indexes."""

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from billing.bodies import CapturedBodies, Excerpt
from billing.body_log import bodies_drain, usage_bodies_matching, usage_bodies_store
from billing.body_models import UsageBody
from billing.models import UsageRecord
from billing.retention import usage_bodies_prune
from billing.services import usage_events_record
from billing.tasks import usage_bodies_retention
from tests.billing.rollup_checks import usage_event
from tokenbyte.redis import BODIES_GROUP, BODIES_STREAM

pytestmark = pytest.mark.django_db
DAY = 86_400


def bodies(account: User, event_id: str, started: float, text: str = "hello") -> CapturedBodies:
    raw = f'{{"messages": [{{"role": "user", "content": "{text}"}}]}}'.encode()
    return CapturedBodies(
        event_id=event_id,
        account_id=account.pk,
        started_us=round(started * 1_000_000),
        request=Excerpt.of(raw, len(raw), 1000),
        response=Excerpt.of(b'{"id": "x"}', 11, 1000),
        status=200,
    )


def calls_days_ago(account: User, *days: float) -> None:
    now = time.time()
    events = [usage_event(account.pk, started_at=now - d * DAY) for d in days]
    usage_events_record(events=events)
    usage_bodies_store(bodies=[bodies(account, e.event_id, e.started_at) for e in events])


def test_bodies_have_a_retention_of_their_own_and_records_stay() -> None:
    alice = User.objects.create_user("a@example.com")
    calls_days_ago(alice, 400, 8, 7.01, 6.99, 1, 0)
    assert usage_bodies_prune(now=timezone.now(), days=7) == 3
    kept = UsageBody.objects.order_by("created_at")
    assert [round((time.time() - b.created_at.timestamp()) / DAY) for b in kept] == [7, 1, 0]
    assert UsageRecord.objects.count() == 6  # the records are kept for their own 90 days
    assert usage_bodies_prune(now=timezone.now(), days=0) == 0  # 0 keeps them


def test_body_retention_deletes_in_bounded_batches_oldest_first() -> None:
    alice = User.objects.create_user("a@example.com")
    calls_days_ago(alice, *[30 + n for n in range(13)], 1)
    with CaptureQueriesContext(connection) as captured:
        deleted = usage_bodies_prune(now=timezone.now(), days=7, batch_size=4, max_batches=2)
    deletes = [q["sql"] for q in captured.captured_queries if "DELETE" in q["sql"]]
    assert (deleted, len(deletes), len(captured)) == (8, 2, 2)  # no ids fetched first
    left = sorted(UsageBody.objects.values_list("created_at", flat=True))
    assert len(left) == 6
    assert left[0] > timezone.now() - timedelta(days=30 + 5, hours=1)  # the oldest went first
    assert usage_bodies_prune(now=timezone.now(), days=7, batch_size=4) == 5
    assert UsageBody.objects.count() == 1


def test_the_beat_task_reads_the_setting(settings: Any) -> None:
    alice = User.objects.create_user("a@example.com")
    calls_days_ago(alice, 3, 1)
    settings.TOKENBYTE_BODY_RETENTION_DAYS = 2
    assert usage_bodies_retention() == 1
    assert UsageBody.objects.count() == 1


@pytest.mark.redis
def test_the_drain_stores_the_stream_once_and_deletes_what_it_stored() -> None:
    alice = User.objects.create_user("a@example.com")
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        client.delete(BODIES_STREAM)
        now = time.time()
        sent = [bodies(alice, f"evt-drain-{n}", now, text=f"prompt {n}") for n in range(5)]
        for item in [*sent, sent[0]]:  # one replayed
            client.xadd(BODIES_STREAM, {"bodies": item.to_json()})
        client.xadd(BODIES_STREAM, {"bodies": b"not json"})
        assert bodies_drain(client, consumer="t1", budget=1) == 6
        assert UsageBody.objects.count() == 5
        assert client.xlen(BODIES_STREAM) == 0
        assert client.xpending(BODIES_STREAM, BODIES_GROUP)["pending"] == 0
        row = UsageBody.objects.get(event_id="evt-drain-3")
        assert "prompt 3" in row.request_text
        # The call's start to the microsecond it was sent with (floats would round either way).
        assert row.created_at == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
            microseconds=sent[3].started_us
        )
    finally:
        client.delete(BODIES_STREAM)
        client.close()


@pytest.mark.postgres
def test_the_search_of_bodies_can_use_the_trigram_indexes() -> None:
    """Django's icontains is UPPER(column::text) LIKE UPPER(%s): the indexes over UPPER(column)
    match it (the planner picks them over the account's index once that one is unselective)."""
    alice = User.objects.create_user("a@example.com")
    now = time.time()
    usage_bodies_store(
        bodies=[bodies(alice, f"evt-trgm-{n}", now, text=f"filler {n}") for n in range(200)]
    )
    matching = usage_bodies_matching(account_id=alice.pk, text="Mongolia")
    assert matching == []
    # The text half of usage_bodies_matching, as it writes it.
    text_only = UsageBody.objects.filter(
        Q(request_text__icontains="Mongolia") | Q(response_text__icontains="Mongolia")
    )
    sql, params = text_only.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table: no scan to prefer
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "usage_body_request_trgm" in plan, plan
    assert "usage_body_response_trgm" in plan, plan
