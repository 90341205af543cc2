"""Recording usage events: one record and one charge per event however often a batch comes,
the balance moved by exactly the charges, each charge the cost rounded half-to-even."""

import itertools
import time
from decimal import Decimal

import pytest

from accounts.models import User
from billing.events import UpstreamAttempt, UsageEvent
from billing.models import EntryKind, LedgerEntry, UsageRecord
from billing.selectors import balance_get, ledger_sum
from billing.services import ledger_credit, usage_events_record
from billing.usage import Usage

pytestmark = pytest.mark.django_db
_ids = itertools.count()


def event(account: User, cost: str, **changes: object) -> UsageEvent:
    number = next(_ids)
    fields: dict[str, object] = {
        "event_id": f"evt-{time.time_ns()}-{number}",
        "request_id": f"req-{number}",
        "endpoint": "chat.completions",
        "key_id": 7,
        "account_id": account.pk,
        "card_id": 3,
        "model": "GPT-4o",
        "provider": "openai",
        "upstream_model": "gpt-4o",
        "credential_id": 1,
        "status": 200,
        "error_code": None,
        "stream": False,
        "usage": Usage(uncached_input=1200, cache_read=300, output=450, reasoning=50),
        "cost": Decimal(cost),
        "started_at": 1_796_000_000.25,
        "latency_ms": 812.345,
        "ttfb_ms": 95.5,
        "attempts": 1,
    }
    fields.update(changes)
    return UsageEvent(**fields)


def test_a_batch_is_recorded_and_charged_once_however_often_it_comes() -> None:
    alice, bob = User.objects.create_user("a@example.com"), User.objects.create_user("b@x.com")
    ledger_credit(account=alice, amount=Decimal("10"))
    batch = [
        event(alice, "0.004537500000"),
        event(alice, "0.0000000015"),  # half a nano-dollar above 1e-9: rounds to 2e-9
        event(bob, "0.25", stream=True, client_disconnected=True, error_code="client_disconnected"),
        event(alice, "0", status=404, error_code="model_not_found", card_id=None),
    ]
    assert usage_events_record(events=batch).recorded == 4
    assert usage_events_record(events=batch).recorded == 0  # delivered again: nothing changes
    assert usage_events_record(events=[batch[0], batch[0]]).recorded == 0
    assert UsageRecord.objects.count() == 4
    charges = LedgerEntry.objects.filter(kind=EntryKind.CHARGE).order_by("id")
    assert [c.amount for c in charges] == [
        Decimal("-0.004537500"),
        Decimal("-0.000000002"),
        Decimal("-0.25"),
    ]  # the free 404 makes no entry
    assert balance_get(account_id=alice.pk) == Decimal("10") - Decimal("0.004537502")
    assert balance_get(account_id=bob.pk) == Decimal("-0.25")
    for account in (alice, bob):
        assert balance_get(account_id=account.pk) == ledger_sum(account_id=account.pk)


def test_a_record_keeps_what_the_event_told() -> None:
    alice = User.objects.create_user("a@example.com")
    tries = (
        UpstreamAttempt(2, 0.5, 4.25, None, "upstream_timeout"),
        UpstreamAttempt(1, 60.75, 700.125, 200, None),
    )
    sent = event(alice, "0.012345678901", attempts=2, attempt_log=tries)
    usage_events_record(events=[sent])
    record = UsageRecord.objects.get(event_id=sent.event_id)
    assert (record.request_id, record.account_id, record.key_id) == (sent.request_id, alice.pk, 7)
    assert (record.model, record.provider, record.status) == ("GPT-4o", "openai", 200)
    assert (record.uncached_input_tokens, record.cache_read_tokens) == (1200, 300)
    assert (record.output_tokens, record.reasoning_tokens) == (450, 50)
    assert record.cost == Decimal("0.012345678901")
    assert record.charged == Decimal("0.012345679")
    assert (record.latency_us, record.ttfb_us) == (812_345, 95_500)
    assert record.started_at.timestamp() == 1_796_000_000.25
    assert [UpstreamAttempt(**a) for a in record.attempt_log] == list(tries)


def test_an_event_of_an_account_deleted_meanwhile_does_not_hold_the_batch() -> None:
    alice = User.objects.create_user("a@example.com")
    gone = event(alice, "0.5", account_id=alice.pk + 1000)
    assert usage_events_record(events=[gone, event(alice, "0.25")]).recorded == 1
    assert [e.amount for e in LedgerEntry.objects.filter(kind=EntryKind.CHARGE)] == [
        Decimal("-0.25")
    ]
