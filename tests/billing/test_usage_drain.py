"""Billing's consumer group on the gateway's usage stream (billing/tasks.py), against real
Redis and the test database, and once through a real Celery worker: every event recorded and
charged exactly once, a dead consumer's entries claimed, the stream trimmed only below what
was acknowledged, unreadable entries kept aside."""

import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import redis
from django.conf import settings

from accounts.models import User
from billing import tasks
from billing.events import UsageEvent
from billing.models import EntryKind, LedgerEntry, UsageRecord
from billing.selectors import balance_get, ledger_sum
from billing.services import usage_events_record
from tests.billing.test_usage_records import event
from tests.conftest import REPO, manage_env
from tokenbyte.redis import USAGE_GROUP, USAGE_STREAM

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def stream() -> Iterator[redis.Redis]:
    """The usage stream, emptied of what other tests' gateways left in it."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(USAGE_STREAM, tasks.DEAD_LETTERS)
    yield client
    client.delete(USAGE_STREAM, tasks.DEAD_LETTERS)
    client.close()


def ship(client: redis.Redis, events: list[UsageEvent]) -> None:
    """As the gateway's metering ships them."""
    for sent in events:
        client.xadd(USAGE_STREAM, {"event": sent.to_json()})


def consumers(client: redis.Redis) -> set[bytes]:
    found: Any = client.xinfo_consumers(USAGE_STREAM, USAGE_GROUP)
    return {consumer["name"] for consumer in found}


def charges() -> list[Decimal]:
    return list(
        LedgerEntry.objects.filter(kind=EntryKind.CHARGE)
        .order_by("id")
        .values_list("amount", flat=True)
    )


def test_a_drain_records_everything_once_and_trims_what_it_acknowledged(
    stream: redis.Redis,
) -> None:
    alice = User.objects.create_user("a@example.com")
    first = [event(alice, "0.001"), event(alice, "0.002")]
    ship(stream, first)
    assert tasks.drain(stream, consumer="one") == 2
    assert stream.xlen(USAGE_STREAM) == 0  # acknowledged, so trimmed
    later = [event(alice, "0.004")]
    ship(stream, later)
    assert tasks.drain(stream, consumer="two") == 1
    assert tasks.drain(stream, consumer="two") == 0
    assert UsageRecord.objects.count() == 3
    assert charges() == [Decimal("-0.001"), Decimal("-0.002"), Decimal("-0.004")]
    assert balance_get(account_id=alice.pk) == ledger_sum(account_id=alice.pk) == Decimal("-0.007")


def test_what_a_dead_consumer_held_is_claimed_and_recorded_once(
    stream: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = User.objects.create_user("a@example.com")
    batch = [event(alice, "0.01"), event(alice, "0.02"), event(alice, "0.03")]
    ship(stream, batch)
    tasks.ensure_group(stream)
    # A consumer read the batch, recorded part of it (its transaction committed), and died
    # before acknowledging anything.
    stream.xreadgroup(USAGE_GROUP, "dead", {USAGE_STREAM: ">"}, count=10)
    usage_events_record(events=batch[:1])
    assert tasks.drain(stream, consumer="fresh") == 0  # not idle long enough to claim yet
    assert stream.xpending(USAGE_STREAM, USAGE_GROUP)["pending"] == 3
    assert stream.xlen(USAGE_STREAM) == 3  # pending entries are never trimmed
    assert b"dead" in consumers(stream)  # what it holds stays its own until claimed
    monkeypatch.setattr(tasks, "CLAIM_IDLE_MS", 0)
    assert tasks.drain(stream, consumer="fresh") == 2
    assert stream.xpending(USAGE_STREAM, USAGE_GROUP)["pending"] == 0
    assert consumers(stream) == {b"fresh"}  # the emptied dead one is forgotten
    assert sorted(charges()) == [Decimal("-0.03"), Decimal("-0.02"), Decimal("-0.01")]
    assert UsageRecord.objects.count() == 3


def test_unreadable_entries_are_kept_aside_and_do_not_hold_the_rest(stream: redis.Redis) -> None:
    alice = User.objects.create_user("a@example.com")
    stream.xadd(USAGE_STREAM, {"event": b"{not json"})
    ship(stream, [event(alice, "0.5")])
    assert tasks.drain(stream, consumer="one") == 1
    assert stream.xlen(tasks.DEAD_LETTERS) == 1
    assert stream.xlen(USAGE_STREAM) == 0
    assert charges() == [Decimal("-0.5")]


def test_an_event_the_database_refuses_is_set_aside_and_the_others_are_recorded(
    stream: redis.Redis,
) -> None:
    alice = User.objects.create_user("a@example.com")
    good = [event(alice, "0.01"), event(alice, "0.02"), event(alice, "0.03")]
    poison = event(alice, "0.5", latency_ms=1e20)  # its microseconds overflow a bigint
    ship(stream, [good[0], poison, *good[1:]])
    assert tasks.drain(stream, consumer="one") == 3
    assert sorted(charges()) == [Decimal("-0.03"), Decimal("-0.02"), Decimal("-0.01")]
    kept = [fields for _, fields in stream.xrange(tasks.DEAD_LETTERS)]
    assert len(kept) == 1
    assert kept[0][b"reason"].startswith((b"DataError", b"OverflowError"))
    assert UsageEvent.from_json(kept[0][b"event"]).event_id == poison.event_id  # kept whole
    assert stream.xpending(USAGE_STREAM, USAGE_GROUP)["pending"] == 0
    assert stream.xlen(USAGE_STREAM) == 0


def test_a_real_celery_worker_drains_the_stream(stream: redis.Redis) -> None:
    alice = User.objects.create_user("a@example.com")
    sent = [event(alice, "0.000123457"), event(alice, "0.25", stream=True)]
    ship(stream, sent)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tokenbyte",
            "worker",
            "--pool",
            "solo",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "WARNING",
        ],
        cwd=REPO,
        env=manage_env(REDIS_URL=settings.REDIS_URL),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        tasks.usage_drain.delay()
        deadline = time.monotonic() + 60
        while UsageRecord.objects.count() < 2 and time.monotonic() < deadline:
            assert worker.poll() is None, worker.stdout.read() if worker.stdout else ""
            time.sleep(0.2)
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=30)
    assert UsageRecord.objects.count() == 2, output
    assert charges() == [Decimal("-0.000123457"), Decimal("-0.25")]
    assert stream.xlen(USAGE_STREAM) == 0
