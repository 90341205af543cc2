"""The ledger in the admin: read-only rows; top-ups and adjustments through the one service."""

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from billing.models import Balance, LedgerEntry
from billing.money import BadAmount, ledger_amount
from billing.services import balance_credit_limit_set, ledger_credit


class CreditForm(forms.ModelForm[LedgerEntry]):
    """A top-up (positive) or an adjustment (negative), as `manage.py credit` makes them."""

    class Meta:
        model = LedgerEntry
        fields = ("account", "amount", "note")

    def clean_amount(self) -> Any:
        try:
            return ledger_amount(self.cleaned_data["amount"])
        except BadAmount as exc:
            raise forms.ValidationError(str(exc)) from None


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin[LedgerEntry]):
    list_display = ("created_at", "account", "kind", "amount", "note", "created_by", "request_id")
    list_filter = ("kind",)
    search_fields = ("account__email", "request_id", "event_id", "note")
    list_select_related = ("account", "created_by")
    form = CreditForm

    def save_model(self, request: HttpRequest, obj: LedgerEntry, form: Any, change: bool) -> None:
        # The service writes the entry and the balance together; the form only collected them.
        credited = ledger_credit(
            account=form.cleaned_data["account"],
            amount=form.cleaned_data["amount"],
            note=form.cleaned_data["note"],
            created_by=request.user,  # type: ignore[arg-type]  # the admin is staff only
        )
        # The admin logs and redirects with the object it gave us: make it the saved entry.
        obj.pk, obj.kind, obj.created_at = (
            credited.entry.pk,
            credited.entry.kind,
            credited.entry.created_at,
        )
        obj._state.adding = False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Balance)
class BalanceAdmin(admin.ModelAdmin[Balance]):
    list_display = ("account", "amount", "credit_limit", "updated_at")
    search_fields = ("account__email",)
    list_select_related = ("account",)
    # The amount moves only with ledger entries; the credit limit (postpaid) is set here.
    fields = ("account", "amount", "credit_limit", "version", "updated_at")
    readonly_fields = ("account", "amount", "version", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Balance, form: Any, change: bool) -> None:
        balance_credit_limit_set(account_id=obj.account_id, credit_limit=obj.credit_limit)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
