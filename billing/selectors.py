"""Reads of the ledger."""

from decimal import Decimal

from django.db.models import Sum

from billing.models import Balance, LedgerEntry


def balance_get(*, account_id: int) -> Decimal:
    """The account's materialised balance (zero before its first entry)."""
    amount = Balance.objects.filter(account_id=account_id).values_list("amount", flat=True).first()
    return amount if amount is not None else Decimal(0)


def ledger_sum(*, account_id: int) -> Decimal:
    """The sum of the account's ledger, which the balance must always equal."""
    total = LedgerEntry.objects.filter(account_id=account_id).aggregate(total=Sum("amount"))
    return total["total"] if total["total"] is not None else Decimal(0)
