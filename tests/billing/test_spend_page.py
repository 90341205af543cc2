"""/billing/'s spend this month (UTC) by model and by key: each figure is the sum of the
ledger's charges for the same requests, charged the way the metering consumer charges them."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import User
from billing.models import EntryKind, LedgerEntry, UsageRecord
from billing.periods import calendar_month
from billing.selectors import usage_spend
from billing.services import ledger_credit
from keys.services import key_mint
from keys.validation import KeySpec
from tests.billing.charges import charge

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(client: Client) -> User:
    user = User.objects.create_user("alice@example.com", "pw-123456789-long")
    ledger_credit(account=user, amount=Decimal("100"))
    client.force_login(user)
    return user


def figures(page: str, kind: str) -> dict[str, Decimal]:
    """The page's exact amounts by model or key id, from the rows' data attributes."""
    rows = re.findall(rf'data-spend-{kind}="([^"]*)" data-amount="([^"]+)"', page)
    return {group: Decimal(amount) for group, amount in rows}


def ledger_charges(**records: object) -> Decimal:
    """What the ledger charged for the usage records matching `records` (a positive sum)."""
    events = UsageRecord.objects.filter(**records).values_list("event_id", flat=True)
    amounts = LedgerEntry.objects.filter(kind=EntryKind.CHARGE, event_id__in=list(events))
    return -sum((entry.amount for entry in amounts), Decimal(0))


def test_spend_by_model_and_key_equals_the_ledgers_charges(client: Client, alice: User) -> None:
    start, end = calendar_month(timezone.now())
    laptop = key_mint(owner=alice, spec=KeySpec(name="laptop")).key
    ci = key_mint(owner=alice, spec=KeySpec(name="CI runner")).key
    bob = User.objects.create_user("bob@example.com")
    costs = ["0.004537500000", "0.0000000015", "0.25", "0.000123456789", "1.5"]
    for number, cost in enumerate(costs * 3):
        charge(
            account_id=alice.pk,
            cost=cost,
            started_at=start + timedelta(hours=number),
            key_id=(laptop, ci)[number % 2].pk,
            model=("GPT-4o", "Claude Sonnet 4.5", "Gemini 2.5 Flash")[number % 3],
        )
    # Not this month's, or not Alice's: in neither table.
    charge(account_id=alice.pk, cost="7", started_at=start - timedelta(seconds=1), key_id=ci.pk)
    charge(account_id=bob.pk, cost="9", started_at=start, model="GPT-4o")

    page = client.get("/billing/").content.decode()
    month = {"account_id": alice.pk, "started_at__gte": start, "started_at__lt": end}
    by_model = figures(page, "model")
    assert set(by_model) == {"GPT-4o", "Claude Sonnet 4.5", "Gemini 2.5 Flash"}
    for model, amount in by_model.items():
        assert amount == ledger_charges(model=model, **month), model
    by_key = figures(page, "key")
    assert set(by_key) == {str(laptop.pk), str(ci.pk)}
    for key_id, amount in by_key.items():
        assert amount == ledger_charges(key_id=int(key_id), **month), key_id
    total = ledger_charges(**month)
    assert sum(by_model.values()) == sum(by_key.values()) == total
    assert f'data-month-total="{total}"' in page
    assert "laptop" in page
    assert "CI runner" in page
    assert "$9.00" not in page


def test_lines_are_largest_first_and_count_requests(alice: User) -> None:
    start, end = calendar_month(timezone.now())
    for cost, model in [("0.5", "small"), ("2", "big"), ("0.25", "small"), ("0", "free")]:
        charge(account_id=alice.pk, cost=cost, started_at=start, model=model)
    lines = usage_spend(account_id=alice.pk, by="model", since=start, until=end)
    assert [(line.group, line.requests, line.charged) for line in lines] == [
        ("big", 1, Decimal("2")),
        ("small", 2, Decimal("0.75")),
        ("free", 1, Decimal("0")),
    ]


def test_a_deleted_key_is_named_by_its_id_and_a_month_without_requests_says_so(
    client: Client, alice: User
) -> None:
    page = client.get("/billing/").content.decode()
    assert page.count("No requests this month yet.") == 2
    start, _ = calendar_month(timezone.now())
    charge(account_id=alice.pk, cost="0.1", started_at=start, key_id=424242)
    page = client.get("/billing/").content.decode()
    assert "Deleted key #424242" in page


def test_another_users_key_name_is_never_shown(client: Client, alice: User) -> None:
    bob = User.objects.create_user("bob@example.com")
    bobs = key_mint(owner=bob, spec=KeySpec(name="bob's secret project")).key
    start, _ = calendar_month(timezone.now())
    # A record naming a key that is not Alice's (it cannot happen through the gateway).
    charge(account_id=alice.pk, cost="0.1", started_at=start, key_id=bobs.pk)
    page = client.get("/billing/").content.decode()
    assert "bob's secret project" not in page
    assert f"Deleted key #{bobs.pk}" in page
