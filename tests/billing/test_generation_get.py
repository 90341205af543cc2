"""The answer's body `id` on usage events and records, and generation_get: an account's call by
its event id or its body id (the newest of several), never another account's."""

import orjson
import pytest

from accounts.models import User
from billing.events import UpstreamAttempt, UsageEvent
from billing.models import UsageRecord
from billing.selectors import generation_get
from billing.services import usage_events_record
from tests.billing.rollup_checks import BASE, usage_event

pytestmark = pytest.mark.django_db


def test_an_event_written_before_response_id_existed_still_loads() -> None:
    event = usage_event(1, response_id="chatcmpl-new")
    assert UsageEvent.from_json(event.to_json()) == event
    old = orjson.loads(event.to_json())
    del old["response_id"]
    assert UsageEvent.from_json(orjson.dumps(old)).response_id is None


def test_the_attempt_log_travels_whole_and_older_events_have_none() -> None:
    tries = (
        UpstreamAttempt(4, 0.5, 30.25, 529, "upstream_error"),
        UpstreamAttempt(5, 131.0, 12.0, 200, None),
    )
    event = usage_event(1, attempts=2, attempt_log=tries)
    assert UsageEvent.from_json(event.to_json()).attempt_log == tries
    old = orjson.loads(event.to_json())
    del old["attempt_log"]
    assert UsageEvent.from_json(orjson.dumps(old)).attempt_log == ()


def test_the_body_id_is_recorded_cut_to_its_column() -> None:
    alice = User.objects.create_user("alice@example.com")
    plain = usage_event(alice.pk, response_id="msg_01abc")
    long = usage_event(alice.pk, response_id="x" * 300)
    none = usage_event(alice.pk, response_id=None)
    usage_events_record(events=[plain, long, none])
    recorded = dict(UsageRecord.objects.values_list("event_id", "response_id"))
    assert recorded == {plain.event_id: "msg_01abc", long.event_id: "x" * 128, none.event_id: ""}


def test_a_generation_is_found_by_either_id_in_its_own_account_only() -> None:
    alice = User.objects.create_user("alice@example.com")
    bob = User.objects.create_user("bob@example.com")
    older = usage_event(alice.pk, response_id="chatcmpl-shared", started_at=BASE)
    newer = usage_event(alice.pk, response_id="chatcmpl-shared", started_at=BASE + 5)
    bobs = usage_event(bob.pk, response_id="chatcmpl-bob")
    usage_events_record(events=[older, newer, bobs])

    def found(account: User, generation_id: str) -> str | None:
        record = generation_get(account_id=account.pk, generation_id=generation_id)
        return record.event_id if record is not None else None

    assert found(alice, older.event_id) == older.event_id
    assert found(alice, "chatcmpl-shared") == newer.event_id  # the newest of those sharing it
    assert found(bob, "chatcmpl-bob") == bobs.event_id
    assert found(alice, "chatcmpl-bob") is None
    assert found(alice, bobs.event_id) is None
    assert found(bob, older.event_id) is None
    assert found(alice, "") is None  # records without a body id are not found by ""
    assert found(alice, "chatcmpl-unknown") is None
