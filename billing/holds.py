"""Holds in the database: the reservations every gateway process shares while Redis is away.

With Redis, one Lua script holds each call's worst case for every process at once
(billing/reservations.py). Without it, a process alone would see only its own holds, and two
processes could each hold up to the whole available balance. Here a hold is a row, taken under
the account's balance row lock, so holds of one account are decided one at a time across every
process: the balance (less the holds that count) and the key's budget (less its spend and its
holds) must cover it. A hold goes when its charge is recorded (after: counted twice for a
moment, never in neither), and counts until it expires: the live call's process renews it.
"""

from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction

from billing.models import Balance, BudgetSpend, Hold
from billing.money import hold_verdict


@transaction.atomic
def holds_take(
    *,
    hold_id: str,
    account_id: int,
    key_id: int,
    budget: Decimal | None,
    window: str | None,
    amount: Decimal,
    postpaid: bool,
    now: datetime,
    seconds: int,
) -> tuple[bool, Decimal, Decimal | None]:
    """Hold `amount` for the call `hold_id` if the account's balance and the key's budget
    cover it: (held, balance left for it, budget left or None for no budget)."""
    Balance.objects.bulk_create([Balance(account_id=account_id)], ignore_conflicts=True)
    balance = Balance.objects.select_for_update().get(account_id=account_id)
    Hold.objects.filter(account_id=account_id, expires_at__lte=now).delete()
    # Summed here, not in SQL: SQLite adds decimals as floats.
    holds = list(Hold.objects.filter(account_id=account_id).values_list("key_id", "amount"))
    spent = Decimal(0)
    if budget is not None:
        spend = BudgetSpend.objects.filter(key_id=key_id, window_name=window or "").first()
        spent = spend.amount if spend is not None else Decimal(0)
    verdict = hold_verdict(
        amount,
        balance=balance.amount,
        credit_limit=balance.credit_limit if postpaid else Decimal(0),
        held=sum((held for _, held in holds), Decimal(0)),
        budget=budget,
        spent=spent,
        key_held=sum((held for key, held in holds if key == key_id), Decimal(0)),
    )
    if not verdict[0]:
        return verdict
    Hold.objects.create(
        id=hold_id,
        account_id=account_id,
        key_id=key_id,
        window_name=window or "",
        amount=amount,
        expires_at=now + timedelta(seconds=seconds),
    )
    return verdict


def holds_release(*, hold_ids: list[str]) -> int:
    return Hold.objects.filter(id__in=hold_ids).delete()[0]


def holds_renew(*, hold_ids: list[str], now: datetime, seconds: int) -> int:
    return Hold.objects.filter(id__in=hold_ids).update(expires_at=now + timedelta(seconds=seconds))
