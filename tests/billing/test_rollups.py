"""Usage rollups: written with the records, equal to their sums in every minute, hour and day,
unchanged by a replay, a bounded number of queries per batch, exact under two consumers."""

import random
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from billing.histograms import histogram_percentile
from billing.models import UsageRecord, UsageRollup
from billing.selectors import usage_rollups, usage_series, usage_total
from billing.services import usage_events_record
from tests.billing.rollup_checks import (
    BASE,
    rollups_in_db,
    rollups_of_records,
    usage_event,
    varied_events,
)

pytestmark = pytest.mark.django_db


def accounts(count: int) -> list[int]:
    return [User.objects.create_user(f"u{n}@example.com").pk for n in range(count)]


def test_rollups_equal_the_records_sums_in_every_minute_hour_and_day() -> None:
    ids = accounts(2)
    usage_events_record(events=varied_events(ids, 120))
    usage_events_record(events=varied_events(ids, 40))  # adds to the rows the first one made
    expected = rollups_of_records()
    assert rollups_in_db() == expected
    periods = {key[1] for key in expected}
    assert periods == {"minute", "hour", "day"}
    starts = {key[2] for key in expected if key[1] == "day"}
    assert len(starts) == 2  # the batch crossed midnight
    for period in periods:
        rows = UsageRollup.objects.filter(period=period)
        assert sum(r.requests for r in rows) == UsageRecord.objects.count() == 160
        assert sum((r.cost for r in rows), Decimal(0)) == sum(
            (r.cost for r in UsageRecord.objects.all()), Decimal(0)
        )


def test_a_rollup_counts_statuses_error_codes_streams_and_tokens() -> None:
    [alice] = accounts(1)
    usage_events_record(
        events=[
            usage_event(alice, stream=True),
            usage_event(
                alice, status=200, error_code="client_disconnected", client_disconnected=True
            ),
            usage_event(alice, status=499, error_code="cancelled", ttfb_ms=None),
            usage_event(alice, status=503, error_code="upstream_unavailable", ttfb_ms=None),
        ]
    )
    day = UsageRollup.objects.get(period="day")
    assert (day.requests, day.status_2xx, day.status_4xx, day.status_5xx) == (4, 2, 1, 1)
    assert (day.client_disconnected, day.cancelled, day.streamed) == (1, 1, 1)
    assert (day.uncached_input_tokens, day.cache_read_tokens, day.cache_write_tokens) == (
        4800,
        1200,
        80,
    )
    assert (day.output_tokens, day.reasoning_tokens) == (1800, 200)
    assert day.cost == Decimal("0.018150000004")  # exact, 12 decimals
    assert day.charged == 4 * Decimal("0.004537500")
    assert sum(day.latency_histogram) == 4
    assert sum(day.ttfb_histogram) == 2  # only the requests that sent a first byte
    assert (day.key_id, day.model, day.provider) == (7, "GPT-4o", "openai")


def test_a_replayed_batch_changes_no_rollup() -> None:
    ids = accounts(2)
    batch = varied_events(ids, 30)
    usage_events_record(events=batch)
    before = rollups_in_db()
    assert usage_events_record(events=batch).recorded == 0
    assert usage_events_record(events=batch[5:10] + batch[5:10]).recorded == 0
    assert rollups_in_db() == before
    # Half old, half new: only the new half is added.
    assert usage_events_record(events=batch[20:] + varied_events(ids, 10)).recorded == 10
    assert rollups_in_db() == rollups_of_records()


def rollup_queries(events: list) -> int:
    """The statements recording a batch ran on the rollups (the records' own inserts grow
    with the batch on SQLite, whose bulk inserts are cut at 999 parameters)."""
    with CaptureQueriesContext(connection) as captured:
        usage_events_record(events=events)
    return sum('"billing_usagerollup"' in query["sql"] for query in captured.captured_queries)


def test_rollup_queries_per_batch_do_not_grow_with_its_events() -> None:
    [alice] = accounts(1)
    # Insert (conflicts ignored), one locking read, update: one event or 400 in its rows.
    assert rollup_queries([usage_event(alice)]) == 3
    assert rollup_queries([usage_event(alice) for _ in range(400)]) == 3
    # 400 events over 40 keys and 12 minutes: 40 x (12 + 2 + 2) rows, a few statements more.
    spread = [usage_event(alice, key_id=n % 40 + 1, started_at=BASE + n * 1.7) for n in range(400)]
    rows = 3 * len({(e.key_id, int(e.started_at) // 60) for e in spread})
    assert rollup_queries(spread) <= 3 + rows // 40
    assert rollups_in_db() == rollups_of_records()


def test_the_range_selectors_read_series_and_percentiles() -> None:
    [alice, bob] = accounts(2)
    events = [
        usage_event(alice, started_at=BASE + 60 * n + 31, latency_ms=ms, key_id=7 + n % 2)
        for n, ms in enumerate([5, 5, 40, 40, 900, 900])
    ]
    usage_events_record(events=[*events, usage_event(bob)])
    since = datetime.fromtimestamp(BASE, UTC).replace(second=0)
    rows = usage_rollups(
        account_id=alice, period="minute", since=since, until=since + timedelta(minutes=4)
    )
    assert [r.starts_at for r in rows] == [since + timedelta(minutes=n) for n in (1, 2, 3)]
    assert (
        usage_rollups(
            account_id=alice,
            period="minute",
            since=since,
            until=since + timedelta(hours=1),
            key_id=8,
        ).count()
        == 3
    )
    series = usage_series(
        account_id=alice,
        period="hour",
        since=since - timedelta(hours=1),
        until=since + timedelta(hours=2),
    )
    assert [(p.starts_at.hour, p.requests) for p in series] == [(23, 1), (0, 5)]  # across midnight
    total = usage_total(series)
    assert total is not None
    assert total.requests == 6
    assert histogram_percentile(total.latency_histogram, 50).upper_us == 40_000
    assert histogram_percentile(total.latency_histogram, 95).upper_us == 1_000_000
    assert usage_total([]) is None


def record_until_it_sticks(events: list, start: threading.Barrier, errors: list) -> None:
    """One consumer: a batch that lost a race (the other committed an event of it first) is
    redelivered, as the stream redelivers what was never acknowledged. Anything else, a
    deadlock included, is an error."""
    try:
        start.wait()
        for _ in range(10):
            try:
                usage_events_record(events=events)
                return
            except IntegrityError:
                continue
        errors.append("a batch kept failing")
    except Exception as exc:  # reported by the test's thread
        errors.append(repr(exc))
    finally:
        connection.close()


def race(first: list, second: list) -> None:
    start = threading.Barrier(2)
    errors: list[str] = []
    threads = [
        threading.Thread(target=record_until_it_sticks, args=(batch, start, errors))
        for batch in (first, second)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_consumers_recording_overlapping_batches_leave_rollups_equal_to_records() -> None:
    ids = accounts(3)
    shuffle = random.Random(7)
    for _ in range(6):
        # Overlapping: the later of the two waits on the first's records, fails, comes again.
        events = varied_events(ids, 160)
        first, second = events[:110], events[50:]
        shuffle.shuffle(first)
        shuffle.shuffle(second)
        race(first, second)
        # Disjoint batches on the same rollup rows, free (no balance lock to queue them up):
        # the two transactions meet on the rollups alone.
        free = [replace(e, cost=Decimal(0)) for e in varied_events(ids, 160)]
        shuffle.shuffle(free)
        race(free[:80], free[80:])
    assert UsageRecord.objects.count() == 6 * 320
    assert rollups_in_db() == rollups_of_records()
