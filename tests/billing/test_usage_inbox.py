"""The usage inbox (billing/inbox.py) under the in-process recorder: events are made durable
first and recorded later, in larger batches; an event written by a process that stopped before
recording it is recorded by the next recorder, once."""

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal

import pytest
from django.db import OperationalError

from accounts.models import User
from billing.events import UsageEvent
from billing.models import EntryKind, LedgerEntry, UsageInbox, UsageRecord
from billing.reservations import RecordedBatch
from billing.selectors import ledger_sum
from billing.services import (
    ledger_credit,
    usage_events_fold,
    usage_events_left,
    usage_events_write,
)
from proxy.gateway import recorder as recorder_module
from proxy.gateway.recorder import Recorder
from tests.billing.test_usage_records import event

pytestmark = pytest.mark.django_db(transaction=True)


def left(written_before: datetime, limit: int) -> list[UsageEvent]:
    return usage_events_left(written_before=written_before, limit=limit)


def write(events: Sequence[UsageEvent]) -> None:
    usage_events_write(events=events)


def fold(events: Sequence[UsageEvent]) -> RecordedBatch:
    return usage_events_fold(events=events)


def run_recorder(recorder: Recorder, events: list[UsageEvent], until: Callable[[], bool]) -> None:
    async def scenario() -> None:
        recorder.start()
        recorder.add(events)
        deadline = time.monotonic() + 10
        while not until():
            assert time.monotonic() < deadline, "the recorder did not get there"
            await asyncio.sleep(0.02)
        await recorder.stop()

    asyncio.run(scenario())


def test_written_events_left_by_a_stopped_process_are_recorded_once_by_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(recorder_module, "STOP_SECONDS", 0.3)
    owner = User.objects.create_user("inbox@example.com")
    ledger_credit(account=owner, amount=Decimal("5"))
    events = [event(owner, "0.0125") for _ in range(5)]
    durable: list[str] = []

    def refuse(batch: Sequence[UsageEvent]) -> RecordedBatch:
        raise OperationalError("simulated: the process dies before recording")

    first = Recorder(
        refuse,
        committed=lambda *_: None,
        dropped=lambda _: None,
        write=write,
        written=lambda batch: durable.extend(e.event_id for e in batch),
        left=left,
    )
    run_recorder(first, events, lambda: len(durable) == 5)
    assert UsageInbox.objects.count() == 5  # durable, answered, not recorded yet
    assert not UsageRecord.objects.exists()

    recorded: list[str] = []
    for _ in range(2):  # the next recorder takes them up; the one after finds nothing
        second = Recorder(
            fold,
            committed=lambda batch, _: recorded.extend(e.event_id for e in batch),
            dropped=lambda _: None,
            write=write,
            left=left,
        )
        run_recorder(second, [], lambda r=second: len(recorded) >= 5 and r.swept)  # type: ignore[misc]
    assert sorted(recorded) == sorted(e.event_id for e in events)
    assert UsageRecord.objects.count() == 5
    charges = LedgerEntry.objects.filter(account=owner, kind=EntryKind.CHARGE)
    assert charges.count() == 5
    assert ledger_sum(account_id=owner.pk) == Decimal("5") - 5 * Decimal("0.0125")


def test_a_fold_that_comes_again_records_nothing_twice() -> None:
    owner = User.objects.create_user("again@example.com")
    events = [event(owner, "0.01") for _ in range(3)]
    write(events)
    write(events)  # written twice: one row each
    assert UsageInbox.objects.count() == 3
    assert fold(events).recorded == 3
    assert fold(events).recorded == 0
    assert UsageRecord.objects.count() == 3
    assert not UsageInbox.objects.exists()
