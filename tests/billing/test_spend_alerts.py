"""Money e-mails (keys/alerts.py, the beat task keys.spend_alerts): a key's budget at 80% and
100% of its window, and a prepaid balance below TOKENBYTE_LOW_BALANCE, each sent once per
window. Time is passed in, never slept."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.core import mail
from pytest_django.fixtures import Settings

from accounts.models import User
from billing.services import ledger_credit
from keys import alerts
from keys.models import ApiKey, SpendAlert
from keys.services import key_mint, key_revoke
from keys.tasks import spend_alerts
from keys.validation import KeySpec
from tests.billing.charges import charge

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 14, 9, 30, tzinfo=UTC)


@pytest.fixture
def owner() -> User:
    user = User.objects.create_user("owner@example.com")
    ledger_credit(account=user, amount=Decimal("1000"))  # no low-balance mail in these tests
    return user


def budgeted(owner: User, budget: str = "10", period: str = "monthly") -> ApiKey:
    spec = KeySpec(name="nightly jobs", budget=Decimal(budget), budget_period=period)
    return key_mint(owner=owner, spec=spec).key


def run(now: datetime = NOW) -> list[str]:
    """One run of the alerts; the subjects of the mails it sent."""
    before = len(mail.outbox)
    alerts.spend_alerts_send(now=now)
    return [str(message.subject) for message in mail.outbox[before:]]


def test_crossing_80_percent_sends_once_then_100_then_again_next_window(owner: User) -> None:
    key = budgeted(owner)
    charge(account_id=owner.pk, cost="7.99", started_at=NOW, key_id=key.pk)
    assert run() == []  # 79.9%
    charge(account_id=owner.pk, cost="0.01", started_at=NOW, key_id=key.pk)
    assert run() == ["[TokenByte] “nightly jobs” has used 80% of its budget"]
    assert mail.outbox[-1].to == ["owner@example.com"]
    body = mail.outbox[-1].body
    assert "has spent $8.00 of its $10.00 budget this month" in body
    assert "resets on 2027-01-01 00:00 UTC" in body
    assert run() == []  # the same window: nothing more
    assert run(NOW + timedelta(days=10)) == []
    charge(account_id=owner.pk, cost="2", started_at=NOW, key_id=key.pk)
    assert run() == ["[TokenByte] “nightly jobs” has used all of its budget"]
    assert run() == []
    # January is a new window: its own 80% mail.
    january = datetime(2027, 1, 3, tzinfo=UTC)
    assert run(january) == []
    charge(account_id=owner.pk, cost="8.5", started_at=january, key_id=key.pk)
    assert run(january) == ["[TokenByte] “nightly jobs” has used 80% of its budget"]
    assert run(january) == []
    assert SpendAlert.objects.filter(key=key).count() == 3


def test_jumping_past_the_budget_sends_one_mail_and_never_the_80_percent_one(
    owner: User,
) -> None:
    key = budgeted(owner, "1", "daily")
    charge(account_id=owner.pk, cost="1.5", started_at=NOW, key_id=key.pk)
    assert run() == ["[TokenByte] “nightly jobs” has used all of its budget"]
    assert "today" in mail.outbox[-1].body
    assert run() == []
    # The next day is a new window; nothing spent in it yet.
    assert run(NOW + timedelta(days=1)) == []


def test_keys_without_a_budget_or_revoked_get_no_mail(owner: User) -> None:
    free = key_mint(owner=owner, spec=KeySpec(name="free")).key
    revoked = budgeted(owner)
    charge(account_id=owner.pk, cost="50", started_at=NOW, key_id=free.pk)
    charge(account_id=owner.pk, cost="50", started_at=NOW, key_id=revoked.pk)
    key_revoke(key=revoked)
    assert run() == []


def test_a_low_balance_mails_once_per_top_up(settings: Settings) -> None:
    settings.TOKENBYTE_LOW_BALANCE = Decimal("1")
    alice = User.objects.create_user("alice@example.com")
    never_funded = User.objects.create_user("new@example.com")  # $0 from the start: no mail
    ledger_credit(account=alice, amount=Decimal("5"))
    charge(account_id=alice.pk, cost="3.9", started_at=NOW)
    assert run() == []  # $1.10
    charge(account_id=alice.pk, cost="0.2", started_at=NOW)
    assert run() == ["[TokenByte] Your balance is low: $0.90"]
    assert mail.outbox[-1].to == ["alice@example.com"]
    assert run() == []
    assert run(NOW + timedelta(days=40)) == []  # still the same top-up's window
    ledger_credit(account=alice, amount=Decimal("10"))
    assert run() == []  # $10.90: fine again
    charge(account_id=alice.pk, cost="10.5", started_at=NOW)
    assert run() == ["[TokenByte] Your balance is low: $0.40"]
    assert not any(never_funded.email in message.to for message in mail.outbox)


def test_postpaid_accounts_get_no_low_balance_mail(settings: Settings) -> None:
    settings.TOKENBYTE_BILLING_MODE = "postpaid"
    alice = User.objects.create_user("alice@example.com")
    ledger_credit(account=alice, amount=Decimal("1"))
    charge(account_id=alice.pk, cost="3", started_at=NOW)
    assert run() == []


def test_a_mail_that_fails_is_sent_by_the_next_run(
    owner: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = budgeted(owner)
    charge(account_id=owner.pk, cost="9", started_at=NOW, key_id=key.pk)

    def refuse(*args: object, **kwargs: object) -> int:
        raise ConnectionRefusedError("the mail server is down")

    monkeypatch.setattr(alerts, "send_mail", refuse)
    assert run() == []
    assert not SpendAlert.objects.exists()
    monkeypatch.undo()
    assert run() == ["[TokenByte] “nightly jobs” has used 80% of its budget"]


def test_beat_runs_the_task_every_minute(owner: User) -> None:
    entry = django_settings.CELERY_BEAT_SCHEDULE["spend-alerts"]
    assert (entry["task"], entry["schedule"]) == ("keys.spend_alerts", 60.0)
    key = budgeted(owner)
    charge(account_id=owner.pk, cost="9", started_at=datetime.now(UTC), key_id=key.pk)
    assert spend_alerts.apply().get() == 1
    assert spend_alerts.apply().get() == 0
