"""Console and admin forms for a key's settings. The services check the invariants again."""

import re
from datetime import datetime
from typing import Any, cast

from django import forms
from django.utils import timezone

from keys.models import MONEY_DIGITS, MONEY_PLACES, ApiKey, BudgetPeriod
from keys.selectors import ModelChoice
from keys.validation import KeySpec, normalize_networks

_LIST_SEPARATORS = re.compile(r"[\s,]+")


def _money_field(label: str, help_text: str) -> forms.DecimalField:
    return forms.DecimalField(
        label=label,
        required=False,
        max_digits=MONEY_DIGITS,
        decimal_places=MONEY_PLACES,
        min_value=0,
        help_text=help_text,
        widget=forms.NumberInput(attrs={"step": "any", "min": "0", "placeholder": "No limit"}),
    )


def _per_minute_field(label: str) -> forms.IntegerField:
    return forms.IntegerField(
        label=label,
        required=False,
        min_value=1,
        max_value=2**31 - 1,
        widget=forms.NumberInput(attrs={"min": "1", "placeholder": "No limit"}),
    )


class KeyForm(forms.Form):
    name = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"autofocus": True}))
    rpm = _per_minute_field("Requests per minute")
    tpm = _per_minute_field("Tokens per minute")
    allowed_models = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Pick none to allow every model.",
    )
    max_request_cost = _money_field(
        "Per-request cost cap (USD)",
        "A request that could cost more has its output shortened to fit, or is refused.",
    )
    budget = _money_field("Budget (USD)", "What the key may spend per period.")
    budget_period = forms.ChoiceField(
        choices=BudgetPeriod.choices, initial=BudgetPeriod.MONTHLY, label="Budget resets"
    )
    expires_at = forms.DateTimeField(
        label="Expires (UTC)",
        required=False,
        widget=forms.DateTimeInput(
            attrs={"type": "datetime-local", "step": "1"}, format="%Y-%m-%dT%H:%M:%S"
        ),
        help_text="Empty: the key never expires.",
    )
    allowed_networks = forms.CharField(
        label="Allowed client IP ranges",
        required=False,
        widget=forms.Textarea(
            attrs={"rows": 3, "placeholder": "203.0.113.0/24\n2001:db8::/32", "spellcheck": "false"}
        ),
        help_text="One address or CIDR range per line. Empty: any address.",
    )
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args: Any, model_choices: list[ModelChoice], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model_choices = model_choices
        field = cast(forms.MultipleChoiceField, self.fields["allowed_models"])
        field.choices = [(choice.title, choice.title) for choice in model_choices]

    @staticmethod
    def initial_for(key: ApiKey) -> dict[str, Any]:
        return {
            "name": key.name,
            "rpm": key.rpm,
            "tpm": key.tpm,
            "allowed_models": list(key.allowed_models),
            "max_request_cost": key.max_request_cost,
            "budget": key.budget,
            "budget_period": key.budget_period,
            "expires_at": key.expires_at,
            "allowed_networks": "\n".join(key.allowed_networks),
            "note": key.note,
        }

    def clean_allowed_networks(self) -> list[str]:
        text = self.cleaned_data["allowed_networks"]
        return normalize_networks(_LIST_SEPARATORS.split(text))

    def clean_expires_at(self) -> datetime | None:
        value: datetime | None = self.cleaned_data["expires_at"]
        # Only a newly chosen time must lie ahead; an unrelated edit keeps a past one.
        if value is not None and "expires_at" in self.changed_data and value <= timezone.now():
            raise forms.ValidationError("Choose a time in the future (UTC).")
        return value

    def spec(self) -> KeySpec:
        return KeySpec.from_cleaned_data(self.cleaned_data)
