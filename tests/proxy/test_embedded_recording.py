"""Embedded mode (no REDIS_URL): the gateway records and charges every usage event itself
(proxy/gateway/recorder.py), once, before the answer's last bytes; a failed write is retried
and still records once; shutdown writes what is left, or says by id what it could not."""

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from decimal import Decimal

import openai
import pytest
from django.conf import settings
from django.db import OperationalError

from billing.events import UsageEvent
from billing.models import Balance, EntryKind, LedgerEntry, UsageInbox, UsageRecord
from billing.money import charge_for
from billing.reservations import RecordedBatch
from billing.usage import Usage
from proxy.gateway import recorder as recorder_module
from proxy.gateway.recorder import Recorder
from tests.conftest import LiveServer
from tests.proxy.conftest import EventLog

pytestmark = pytest.mark.skipif(bool(settings.REDIS_URL), reason="embedded mode: no REDIS_URL")

HELLO = [{"role": "user", "content": "Say hello"}]
STARTING = Decimal(1000)  # tokenbyte/settings_test.py


def _recorded_once(event: UsageEvent, timeout: float = 5.0) -> LedgerEntry:
    deadline = time.monotonic() + timeout
    while not UsageRecord.objects.filter(event_id=event.event_id).exists():
        assert time.monotonic() < deadline, f"{event.event_id} not recorded within {timeout} s"
        time.sleep(0.02)
    assert UsageRecord.objects.filter(event_id=event.event_id).count() == 1
    charges = LedgerEntry.objects.filter(event_id=event.event_id, kind=EntryKind.CHARGE)
    assert charges.count() == 1
    return charges.get()


def test_a_chat_request_is_recorded_and_charged_once(
    openai_client: openai.OpenAI, usage_events: EventLog
) -> None:
    reply = openai_client.chat.completions.with_raw_response.create(model="GPT-4o", messages=HELLO)
    event = usage_events.for_request(reply.headers["x-request-id"])
    assert event.cost > 0

    charge = _recorded_once(event)
    assert charge.amount == -charge_for(event.cost)
    assert charge.request_id == event.request_id
    record = UsageRecord.objects.get(event_id=event.event_id)
    assert (record.cost, record.charged) == (event.cost, charge_for(event.cost))
    balance = Balance.objects.get(account_id=event.account_id)
    assert balance.amount == STARTING - charge_for(event.cost)


def test_the_answer_ends_after_its_event_is_durable(
    openai_client: openai.OpenAI, usage_events: EventLog
) -> None:
    reply = openai_client.chat.completions.with_raw_response.create(model="GPT-4o", messages=HELLO)
    event = usage_events.for_request(reply.headers["x-request-id"])
    # No wait: durable before the last byte means committed by the time the client has it,
    # written in the inbox or already recorded from it.
    written = UsageInbox.objects.filter(event_id=event.event_id).exists()
    assert written or UsageRecord.objects.filter(event_id=event.event_id).exists()
    _recorded_once(event)


def test_a_write_that_fails_after_committing_is_retried_and_records_once(
    gateway: LiveServer, openai_client: openai.OpenAI, usage_events: EventLog
) -> None:
    runtime = gateway.runtime
    assert runtime is not None
    assert runtime.recorder is not None
    recorder = runtime.recorder
    real = recorder._record
    calls = []

    def commit_then_fail(events: Sequence[UsageEvent]) -> RecordedBatch:
        calls.append(len(events))
        batch = real(events)
        if len(calls) == 1:  # the commit happened; its answer "was lost"
            raise OperationalError("simulated: connection lost after COMMIT")
        return batch

    recorder._record = commit_then_fail
    try:
        reply = openai_client.chat.completions.with_raw_response.create(
            model="GPT-4o", messages=HELLO
        )
        event = usage_events.for_request(reply.headers["x-request-id"])
        charge = _recorded_once(event)
        deadline = time.monotonic() + 5
        while len(calls) < 2:  # the retry
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        recorder._record = real
    assert charge.amount == -charge_for(event.cost)
    assert UsageRecord.objects.filter(event_id=event.event_id).count() == 1
    assert LedgerEntry.objects.filter(event_id=event.event_id).count() == 1
    balance = Balance.objects.get(account_id=event.account_id)
    assert balance.amount == STARTING - charge_for(event.cost)


# The recorder alone, on its own loop: stop() drains, and bounds what it waits for.


def _event(n: int) -> UsageEvent:
    return UsageEvent(
        event_id=f"evt-stop-{n}",
        request_id=f"req-stop-{n}",
        endpoint="chat.completions",
        key_id=None,
        account_id=1,
        card_id=None,
        model="GPT-4o",
        provider="openai",
        upstream_model="gpt-4o",
        credential_id=None,
        status=200,
        error_code=None,
        stream=False,
        usage=Usage(uncached_input=10, output=5),
        cost=Decimal("0.0001"),
        started_at=time.time(),
        latency_ms=1.0,
        ttfb_ms=None,
        attempts=1,
    )


def _batch(events: Sequence[UsageEvent]) -> RecordedBatch:
    return RecordedBatch(len(events), {1: [e.event_id for e in events]}, {}, {}, {})


def test_stop_writes_what_is_queued() -> None:
    written: list[str] = []
    committed: list[str] = []
    gate = threading.Event()

    def record(events: Sequence[UsageEvent]) -> RecordedBatch:
        gate.wait(5)  # the first write is under way when stop() comes
        written.extend(e.event_id for e in events)
        return _batch(events)

    async def scenario() -> None:
        recorder = Recorder(
            record,
            committed=lambda events, _: committed.extend(e.event_id for e in events),
            dropped=lambda _: None,
        )
        recorder.start()
        recorder.add([_event(0)])
        await asyncio.sleep(0.05)  # event 0 in flight; 1..9 wait for it
        recorder.add([_event(n) for n in range(1, 10)])
        stopping = asyncio.create_task(recorder.stop())
        await asyncio.sleep(0.05)
        gate.set()
        await stopping
        assert recorder.backlog == 0

    asyncio.run(scenario())
    assert set(committed) == {f"evt-stop-{n}" for n in range(10)}
    assert set(written) == set(committed)


def test_stop_gives_up_within_its_bound_and_names_what_it_could_not_write(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(recorder_module, "STOP_SECONDS", 0.5)

    def record(events: Sequence[UsageEvent]) -> RecordedBatch:
        raise OperationalError("simulated: database is locked")

    async def scenario() -> float:
        recorder = Recorder(record, committed=lambda *_: None, dropped=lambda _: None)
        recorder.start()
        recorder.add([_event(n) for n in range(3)])
        await asyncio.sleep(0.1)  # a failed write or two, retrying
        started = time.monotonic()
        await recorder.stop()
        return time.monotonic() - started

    with caplog.at_level(logging.ERROR, logger="proxy.gateway.recorder"):
        took = asyncio.run(scenario())
    assert took < 2.0
    [line] = [r.getMessage() for r in caplog.records if "not recorded" in r.getMessage()]
    assert line.startswith("stopping: 3 usage events not recorded")
    assert all(f"evt-stop-{n}" in line for n in range(3))


def test_a_poison_event_is_set_aside_and_the_others_are_recorded(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(recorder_module, "RETRY_FIRST_SECONDS", 0.001)
    written: list[str] = []

    def record(events: Sequence[UsageEvent]) -> RecordedBatch:
        if any(event.event_id == "evt-stop-3" for event in events):
            raise OperationalError("simulated: value out of range")
        written.extend(event.event_id for event in events)
        return RecordedBatch(len(events), {}, {}, {}, {})

    dropped: list[str] = []

    async def scenario() -> None:
        settled = asyncio.Event()

        def gone(events: Sequence[UsageEvent]) -> None:
            dropped.extend(e.event_id for e in events)
            settled.set()

        recorder = Recorder(record, committed=lambda *_: None, dropped=gone)
        recorder.start()
        recorder.add([_event(n) for n in range(8)])
        await asyncio.wait_for(settled.wait(), 5)  # the poison is dropped after the others
        await recorder.stop()

    with caplog.at_level(logging.ERROR, logger="proxy.gateway.recorder"):
        asyncio.run(scenario())
    assert sorted(written) == sorted(f"evt-stop-{n}" for n in range(8) if n != 3)
    assert dropped == ["evt-stop-3"]
    [line] = [r.getMessage() for r in caplog.records if "cannot be recorded" in r.getMessage()]
    assert '"event_id":"evt-stop-3"' in line  # logged whole, for an operator to replay


def test_while_the_database_refuses_everything_nothing_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(recorder_module, "RETRY_FIRST_SECONDS", 0.001)
    monkeypatch.setattr(recorder_module, "RETRY_MAX_SECONDS", 0.005)
    monkeypatch.setattr(recorder_module, "STOP_SECONDS", 0.1)
    attempts = 0

    def record(events: Sequence[UsageEvent]) -> RecordedBatch:
        nonlocal attempts
        attempts += 1
        raise OperationalError("simulated: the disk is full")

    dropped: list[str] = []

    async def scenario() -> None:
        recorder = Recorder(
            record,
            committed=lambda *_: None,
            dropped=lambda events: dropped.extend(e.event_id for e in events),
        )
        recorder.start()
        recorder.add([_event(n) for n in range(4)])
        await asyncio.sleep(0.3)
        await recorder.stop()

    asyncio.run(scenario())
    assert attempts > 10  # it kept trying, halving and isolating
    assert dropped == []


def test_embedded_retention_deletes_a_batch_at_a_time_until_one_comes_back_short(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No Celery beat in embedded mode: the recorder runs retention, one bounded batch per
    step, writes first, then rests for PRUNE_SECONDS once a batch comes back short."""
    batches = iter([(5, 5), (5, 5), (2, 5), (0, 5)])
    steps: list[str] = []

    def prune() -> tuple[int, int]:
        deleted, size = next(batches)
        steps.append(f"pruned {deleted}")
        return deleted, size

    def record(events: Sequence[UsageEvent]) -> RecordedBatch:
        steps.append(f"recorded {len(events)}")
        return RecordedBatch(len(events), {}, {}, {}, {})

    async def scenario() -> None:
        recorder = Recorder(record, committed=lambda *_: None, dropped=lambda _: None, prune=prune)
        recorder.add([_event(n) for n in range(3)])  # waiting before it starts: written first
        recorder.start()
        await asyncio.sleep(0.3)
        await recorder.stop()

    asyncio.run(scenario())
    # The short batch ended the run; the next is an hour away.
    assert steps == ["recorded 3", "pruned 5", "pruned 5", "pruned 2"]
