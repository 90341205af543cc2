"""Writes to the ledger: each entry and its balance change in one transaction."""

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import F

from billing.models import Balance, EntryKind, LedgerEntry
from billing.money import ledger_amount


@dataclass(frozen=True, slots=True)
class Credited:
    entry: LedgerEntry
    balance: Decimal  # the account's balance after it


@transaction.atomic
def ledger_credit(
    *,
    account: AbstractBaseUser,
    amount: Decimal,
    note: str = "",
    created_by: AbstractBaseUser | None = None,
) -> Credited:
    """An operator's top-up (amount > 0) or adjustment (< 0), and the balance after it.

    Raises billing.money.BadAmount (zero, more than 9 decimals, too large); nothing changes.
    """
    exact = ledger_amount(amount)
    entry = LedgerEntry.objects.create(
        account_id=account.pk,
        amount=exact,
        kind=EntryKind.TOPUP if exact > 0 else EntryKind.ADJUSTMENT,
        note=note.strip(),
        created_by_id=created_by.pk if created_by is not None else None,
    )
    return Credited(entry=entry, balance=_balance_add(account.pk, exact))


def _balance_add(account_id: int, amount: Decimal) -> Decimal:
    """Add to the materialised balance (the row is locked until the transaction ends)."""
    Balance.objects.get_or_create(account_id=account_id)
    Balance.objects.filter(account_id=account_id).update(amount=F("amount") + amount)
    balance: Decimal = Balance.objects.values_list("amount", flat=True).get(account_id=account_id)
    return balance
