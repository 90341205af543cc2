"""The metering queue as /metrics reads it (billing/metering_queue.py): events durable but not
yet recorded, in the usage stream (not yet delivered to billing's consumer group, or delivered
and not acknowledged) and in the inbox, and the oldest one's age."""

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from accounts.models import User
from billing import tasks
from billing.inbox import inbox_append
from billing.metering_queue import metering_queue_state
from billing.models import UsageInbox
from tests.billing.test_usage_drain import ship
from tests.billing.test_usage_records import event
from tokenbyte.redis import USAGE_GROUP, USAGE_STREAM


@pytest.mark.django_db
def test_the_inbox_rows_are_the_queue_and_the_oldest_one_its_age(
    settings: SettingsWrapper,
) -> None:
    settings.REDIS_URL = ""  # embedded mode
    assert metering_queue_state().events == 0
    assert metering_queue_state().oldest_age_ms == 0
    alice = User.objects.create_user("a@example.com")
    inbox_append([event(alice, "0.01"), event(alice, "0.02")])
    UsageInbox.objects.filter(pk=UsageInbox.objects.order_by("pk").values("pk")[:1]).update(
        written_at=timezone.now() - timedelta(seconds=42)
    )
    state = metering_queue_state()
    assert state.events == 2
    assert 42_000 <= state.oldest_age_ms < 60_000


@pytest.fixture
def stream() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(USAGE_STREAM, tasks.DEAD_LETTERS)
    yield client
    client.delete(USAGE_STREAM, tasks.DEAD_LETTERS)
    client.close()


@pytest.mark.redis
@pytest.mark.django_db
def test_the_streams_unacknowledged_entries_are_the_queue(stream: redis.Redis) -> None:
    alice = User.objects.create_user("a@example.com")
    ship(stream, [event(alice, "0.01") for _ in range(5)])
    oldest_ms = int(stream.xrange(USAGE_STREAM, count=1)[0][0].split(b"-")[0])
    # Before any consumer read it: all five wait, since the first was added.
    state = metering_queue_state()
    assert state.events == 5
    assert abs(state.oldest_age_ms - (time.time() * 1000 - oldest_ms)) < 1000
    # Two delivered to a worker that has not committed them: still waiting, the oldest too.
    stream.xgroup_create(USAGE_STREAM, USAGE_GROUP, id="0")
    stream.xreadgroup(USAGE_GROUP, "worker-1", {USAGE_STREAM: ">"}, count=2)
    assert metering_queue_state().events == 5
    # Acknowledged: gone from the queue; the oldest is now the first undelivered one.
    delivered = stream.xpending_range(USAGE_STREAM, USAGE_GROUP, "-", "+", 10)
    stream.xack(USAGE_STREAM, USAGE_GROUP, *(entry["message_id"] for entry in delivered))
    assert metering_queue_state().events == 3
    # The drain records them all: nothing waits.
    tasks.usage_drain()
    assert metering_queue_state() == type(state)(events=0, oldest_age_ms=0)
