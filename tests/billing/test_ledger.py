"""The ledger (CONTRACT.md §3, §5): append-only entries, the balance their sum, `credit` as an
operator runs it, the admin's top-ups and adjustments through the same service."""

from decimal import Decimal
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse

from accounts.models import User
from billing.models import Balance, EntryKind, LedgerEntry
from billing.money import BadAmount, charge_for, ledger_amount
from billing.pricing import price_text
from billing.selectors import balance_get, ledger_sum
from billing.services import balance_credit_limit_set, ledger_credit
from tests.accounts.otp import force_admin_login
from tests.conftest import manage, manage_env


def credit(*args: str) -> tuple[int, str, str]:
    result = manage("credit", *args, env=manage_env())
    return result.returncode, result.stdout, result.stderr


@pytest.mark.django_db(transaction=True)
def test_credit_prints_the_new_balance_alone_and_adds_up() -> None:
    owner = User.objects.create_user("payer@example.com")
    assert credit("Payer@Example.com", "10", "--note", "first top-up") == (0, "10.00\n", "")
    assert credit("payer@example.com", "-2.5") == (0, "7.50\n", "")
    assert credit("payer@example.com", "0.000000001") == (0, "7.500000001\n", "")
    entries = list(LedgerEntry.objects.filter(account=owner).order_by("id"))
    assert [(e.kind, e.amount) for e in entries] == [
        (EntryKind.TOPUP, Decimal("10")),
        (EntryKind.ADJUSTMENT, Decimal("-2.5")),
        (EntryKind.TOPUP, Decimal("0.000000001")),
    ]
    assert entries[0].note == "first top-up"
    assert balance_get(account_id=owner.pk) == ledger_sum(account_id=owner.pk)
    assert balance_get(account_id=owner.pk) == Decimal("7.500000001")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("payer@example.com", "0"), "must not be zero"),
        (("payer@example.com", "ten"), "is not an amount of US dollars"),
        (("payer@example.com", "0.0000000001"), "more than 9 decimals"),
        (("payer@example.com", "1e20"), "too large"),
        (("payer@example.com", "NaN"), "is not an amount"),
        (("nobody@example.com", "5"), "no account has the email address"),
    ],
)
def test_bad_input_is_one_stderr_line_and_changes_nothing(args: tuple[str, ...], says: str) -> None:
    User.objects.create_user("payer@example.com")
    before = list(Balance.objects.values_list("account_id", "amount", "version"))
    code, out, err = credit(*args)
    assert code != 0
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert says in err
    assert not LedgerEntry.objects.exists()
    assert list(Balance.objects.values_list("account_id", "amount", "version")) == before


def test_the_rounding_rule_is_half_to_even_at_a_nano_dollar() -> None:
    assert charge_for(Decimal("0.0000000005")) == Decimal("0")  # half: to the even neighbour
    assert charge_for(Decimal("0.0000000015")) == Decimal("0.000000002")
    assert charge_for(Decimal("0.0000000025")) == Decimal("0.000000002")
    assert charge_for(Decimal("0.000123456789012")) == Decimal("0.000123457")
    assert charge_for(Decimal("3.75")) == Decimal("3.750000000")
    with pytest.raises(BadAmount):
        ledger_amount(Decimal("0.0000000005"))  # an operator's amount is never rounded
    assert price_text(Decimal("0.000123000")) == "0.000123"
    assert price_text(Decimal("-2.5")) == "-2.50"


@pytest.mark.django_db
def test_entries_are_append_only_and_a_usage_event_is_charged_once() -> None:
    owner = User.objects.create_user("payer@example.com")
    entry = ledger_credit(account=owner, amount=Decimal("1")).entry
    entry.note = "rewritten"
    with pytest.raises(ValueError, match="append-only"):
        entry.save()
    with pytest.raises(ValueError, match="append-only"):
        entry.delete()
    charge = {"account": owner, "amount": Decimal("-0.01"), "kind": EntryKind.CHARGE}
    LedgerEntry.objects.create(**charge, event_id="evt-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(**charge, event_id="evt-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(**charge)  # a charge names its usage event
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(account=owner, amount=Decimal(0), kind=EntryKind.TOPUP)


@pytest.mark.django_db
def test_the_admin_credits_through_the_service_and_never_edits(client: Client) -> None:
    staff = User.objects.create_superuser("ops@example.com", "correct-horse-battery")
    owner = User.objects.create_user("payer@example.com")
    admin = force_admin_login(client, staff)
    add = reverse("admin:billing_ledgerentry_add")
    refused = admin.post(add, {"account": owner.pk, "amount": "0.0000000001", "note": ""})
    assert refused.status_code == 200
    assert "no more than 9 decimal places" in refused.content.decode()  # the form field's check
    assert not LedgerEntry.objects.exists()
    done = admin.post(add, {"account": owner.pk, "amount": "-3", "note": "goodwill reversal"})
    assert done.status_code == 302
    entry = LedgerEntry.objects.get()
    assert (entry.kind, entry.amount, entry.created_by) == (EntryKind.ADJUSTMENT, -3, staff)
    assert balance_get(account_id=owner.pk) == Decimal(-3)
    change = admin.get(reverse("admin:billing_ledgerentry_change", args=[entry.pk]))
    assert b"goodwill reversal" in change.content  # shown, read-only
    assert b'name="amount"' not in change.content
    delete = admin.post(
        reverse("admin:billing_ledgerentry_delete", args=[entry.pk]), {"post": "yes"}
    )
    assert delete.status_code == 403
    assert LedgerEntry.objects.count() == 1


@pytest.mark.django_db
def test_a_new_account_starts_with_the_configured_balance_and_credit_limit(
    settings: Any,
) -> None:
    settings.TOKENBYTE_STARTING_BALANCE = Decimal("5")
    settings.TOKENBYTE_CREDIT_LIMIT = Decimal("20")
    owner = User.objects.create_user("new@example.com")
    entry = LedgerEntry.objects.get(account=owner)
    assert (entry.kind, entry.amount) == (EntryKind.TOPUP, Decimal(5))
    assert entry.note == "Starting balance"
    balance = Balance.objects.get(account=owner)
    assert (balance.amount, balance.credit_limit) == (Decimal(5), Decimal(20))
    assert balance_get(account_id=owner.pk) == ledger_sum(account_id=owner.pk) == Decimal(5)


@pytest.mark.django_db
def test_setting_a_credit_limit_moves_the_balance_version_not_its_amount() -> None:
    owner = User.objects.create_user("team@example.com")
    before = Balance.objects.get(account=owner)
    state = balance_credit_limit_set(account_id=owner.pk, credit_limit=Decimal("50"))
    assert (state.amount, state.credit_limit) == (before.amount, Decimal(50))
    assert state.version == before.version + 1
    with pytest.raises(BadAmount):
        balance_credit_limit_set(account_id=owner.pk, credit_limit=Decimal("-1"))
