"""Holds in the database (billing/holds.py): what the gateways share while Redis is away. Taken
from many connections at once they never hold more than the balance or the budget covers."""

import concurrent.futures
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from billing.holds import holds_release, holds_renew, holds_take
from billing.models import Hold
from billing.services import ledger_credit
from keys.services import key_mint
from keys.validation import KeySpec
from tests.proxy.test_ceiling import account

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)


def take(
    hold_id: str,
    account_id: int,
    amount: str,
    *,
    key_id: int = 1,
    budget: str | None = None,
    window: str | None = None,
    postpaid: bool = False,
    now: datetime = NOW,
) -> tuple[bool, Decimal, Decimal | None]:
    return holds_take(
        hold_id=hold_id,
        account_id=account_id,
        key_id=key_id,
        budget=None if budget is None else Decimal(budget),
        window=window,
        amount=Decimal(amount),
        postpaid=postpaid,
        now=now,
        seconds=60,
    )


def race(count: int, **kw: object) -> list[bool]:
    """`count` holds taken at once, each on a connection of its own."""
    start = threading.Barrier(count)

    def one(index: int) -> bool:
        start.wait()
        try:
            return take(f"race-{index}", **kw)[0]
        finally:
            connection.close()

    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


@pytest.mark.postgres
def test_holds_taken_at_once_never_exceed_the_balance() -> None:
    owner = account("1.00")
    held = race(30, account_id=owner.pk, amount="0.10")
    assert held.count(True) == 10
    assert sum(Hold.objects.values_list("amount", flat=True), Decimal(0)) == Decimal("1.00")


@pytest.mark.postgres
def test_holds_taken_at_once_never_exceed_the_budget() -> None:
    owner = account("10")
    held = race(20, account_id=owner.pk, amount="0.10", budget="0.50", window="2026-12")
    assert held.count(True) == 5


def test_a_refusal_says_what_is_left_and_holds_nothing() -> None:
    owner = account("1.00")
    assert take("a", owner.pk, "0.70") == (True, Decimal("0.30"), None)
    assert take("b", owner.pk, "0.40") == (False, Decimal("0.30"), None)
    assert list(Hold.objects.values_list("id", flat=True)) == ["a"]


def test_the_budget_counts_its_spend_and_its_key_s_holds_only() -> None:
    owner = account("10")
    key = key_mint(owner=owner, spec=KeySpec(name="budgeted")).key
    assert take("other-key", owner.pk, "0.30", key_id=key.pk + 1)[0]
    held, _, left = take("a", owner.pk, "0.30", key_id=key.pk, budget="0.50", window="lifetime")
    assert (held, left) == (True, Decimal("0.20"))
    held, _, left = take("b", owner.pk, "0.30", key_id=key.pk, budget="0.50", window="lifetime")
    assert (held, left) == (False, Decimal("0.20"))


def test_postpaid_holds_reach_down_to_the_credit_limit() -> None:
    owner = account("0")
    owner.balance.credit_limit = Decimal("0.50")
    owner.balance.save()
    assert not take("prepaid", owner.pk, "0.40")[0]
    assert take("postpaid", owner.pk, "0.40", postpaid=True) == (True, Decimal("0.10"), None)


def test_an_expired_hold_no_longer_counts_and_is_swept() -> None:
    owner = account("1.00")
    assert take("old", owner.pk, "0.90")[0]
    assert not take("new", owner.pk, "0.90", now=NOW + timedelta(seconds=59))[0]
    assert take("new", owner.pk, "0.90", now=NOW + timedelta(seconds=61))[0]
    assert list(Hold.objects.values_list("id", flat=True)) == ["new"]


def test_a_renewed_hold_keeps_counting_and_a_released_one_frees_its_amount() -> None:
    owner = account("1.00")
    assert take("live", owner.pk, "0.90")[0]
    assert holds_renew(hold_ids=["live"], now=NOW + timedelta(seconds=50), seconds=60) == 1
    assert not take("next", owner.pk, "0.90", now=NOW + timedelta(seconds=100))[0]
    assert holds_release(hold_ids=["live"]) == 1
    assert take("next", owner.pk, "0.90", now=NOW + timedelta(seconds=100))[0]


def test_a_charge_recorded_before_its_hold_is_released_is_counted_twice_never_in_neither() -> None:
    owner = account("1.00")
    assert take("call", owner.pk, "0.60")[0]
    ledger_credit(account=owner, amount=Decimal("-0.50"), note="the call's charge, recorded")
    assert not take("next", owner.pk, "0.20")[0]  # 1.00 - 0.50 charged - 0.60 still held
    holds_release(hold_ids=["call"])
    assert take("next", owner.pk, "0.50")[0]
