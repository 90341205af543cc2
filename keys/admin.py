from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from keys.models import ApiKey
from keys.services import key_revoke, key_update
from keys.validation import KeySpec, clean_key_spec

_LINES = forms.Textarea(attrs={"rows": 4, "cols": 60})
_EDITABLE = (
    "name",
    "rpm",
    "tpm",
    "allowed_models",
    "max_request_cost",
    "budget",
    "budget_period",
    "expires_at",
    "allowed_networks",
    "note",
)


class ApiKeyAdminForm(forms.ModelForm[ApiKey]):
    """Edits go through key_update, which checks them again; lists are one entry per line."""

    allowed_models = forms.CharField(
        required=False, widget=_LINES, help_text="Catalog titles, one per line; empty: all."
    )
    allowed_networks = forms.CharField(
        required=False, widget=_LINES, help_text="CIDR ranges, one per line; empty: any."
    )

    class Meta:
        model = ApiKey
        fields = _EDITABLE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("allowed_models", "allowed_networks"):
            self.initial[name] = "\n".join(getattr(self.instance, name) or [])

    def clean_allowed_models(self) -> list[str]:
        return _lines(self.cleaned_data["allowed_models"])

    def clean_allowed_networks(self) -> list[str]:
        return _lines(self.cleaned_data["allowed_networks"])

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not self.errors:  # the spec needs every field
            try:
                clean_key_spec(self.spec(), current_models=tuple(self.instance.allowed_models))
            except ValidationError as exc:
                raise ValidationError(exc.message_dict) from exc
        return data

    def spec(self) -> KeySpec:
        return KeySpec.from_cleaned_data(self.cleaned_data)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin[ApiKey]):
    form = ApiKeyAdminForm
    list_display = (
        "name",
        "owner",
        "prefix",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
        "limits",
    )
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "budget_period", "created_at")
    search_fields = ("name", "prefix", "owner__email", "note")
    list_select_related = ("owner",)
    readonly_fields = (
        "owner",
        "prefix",
        "created_at",
        "updated_at",
        "last_used_at",
        "revoked_at",
        "rotated_from",
    )
    fieldsets = (
        (None, {"fields": ("name", "owner", "prefix", "note")}),
        ("Limits", {"fields": ("rpm", "tpm", "max_request_cost", "budget", "budget_period")}),
        ("Access", {"fields": ("allowed_models", "allowed_networks", "expires_at")}),
        (
            "Record",
            {
                "fields": (
                    "created_at",
                    "updated_at",
                    "last_used_at",
                    "revoked_at",
                    "rotated_from",
                )
            },
        ),
    )
    actions = ("revoke_selected",)

    @admin.display(description="Limits")
    def limits(self, key: ApiKey) -> str:
        return ", ".join(key.limits_summary()) or "—"

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A secret is shown once, to its owner: keys are minted in the console or by `mintkey`.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False  # revoke instead: a key's usage history stays attached to it

    def has_change_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        # A revoked key is a record: shown, never changed.
        if obj is not None and obj.revoked_at is not None:
            return False
        return super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        key_update(key=obj, spec=form.spec())

    @admin.action(description="Revoke the selected API keys")
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        count = 0
        for key in queryset.filter(revoked_at__isnull=True):
            key_revoke(key=key)
            count += 1
        self.message_user(request, f"Revoked {count} API key(s).", messages.SUCCESS)
