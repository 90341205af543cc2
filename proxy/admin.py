from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from proxy.catalog.credential_check import CredentialCheckFailed
from proxy.models import ModelCard, UpstreamCredential
from proxy.services import (
    card_save_by_operator,
    cards_set_active,
    credential_key_check,
    credential_save,
    credentials_set_enabled,
)


@admin.register(ModelCard)
class ModelCardAdmin(admin.ModelAdmin[ModelCard]):
    list_display = (
        "title",
        "provider",
        "upstream_id",
        "type",
        "context_length",
        "input_price",
        "output_price",
        "cache_read_price",
        "cache_write_price",
        "active",
        "source",
    )
    list_filter = (
        "provider",
        "type",
        "active",
        "source",
        "supports_tools",
        "supports_vision",
        "supports_reasoning",
    )
    search_fields = ("title", "upstream_id", "aliases")
    readonly_fields = ("source", "created_at", "updated_at")
    filter_horizontal = ("credentials",)
    actions = ("activate", "deactivate")
    fieldsets = (
        (None, {"fields": ("title", "provider", "upstream_id", "aliases", "type", "active")}),
        ("Limits", {"fields": ("context_length", "max_output_tokens", "first_byte_timeout")}),
        (
            "Prices (USD per million tokens)",
            {"fields": ("input_price", "output_price", "cache_read_price", "cache_write_price")},
        ),
        (
            "Capabilities",
            {
                "fields": (
                    "supports_tools",
                    "supports_vision",
                    "supports_json",
                    "supports_reasoning",
                )
            },
        ),
        ("Routing", {"fields": ("credentials",)}),
        ("Record", {"fields": ("source", "created_at", "updated_at")}),
    )

    def save_model(self, request: HttpRequest, obj: ModelCard, form: Any, change: bool) -> None:
        card_save_by_operator(card=obj)

    @admin.action(description="Activate the selected models")
    def activate(self, request: HttpRequest, queryset: QuerySet[ModelCard]) -> None:
        count = cards_set_active(cards=queryset, active=True)
        self.message_user(request, f"{count} models activated.")

    @admin.action(description="Deactivate the selected models")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[ModelCard]) -> None:
        count = cards_set_active(cards=queryset, active=False)
        self.message_user(request, f"{count} models deactivated.")


class UpstreamCredentialForm(forms.ModelForm[UpstreamCredential]):
    base_url = forms.URLField(
        label="Base URL",
        required=False,
        assume_scheme="https",
        max_length=500,
        help_text="Empty: the provider's official API.",
    )
    api_key = forms.CharField(
        label="API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Stored encrypted; only its last 4 characters are ever shown. "
        "Leave empty to keep the current key.",
    )

    verify = forms.BooleanField(
        label="Check the key with the provider",
        required=False,
        initial=True,
        help_text="One call to the provider's model list before a new key is saved (as "
        "`manage.py upstream add` does); untick it for an upstream this server cannot reach yet.",
    )

    class Meta:
        model = UpstreamCredential
        fields = (
            "provider",
            "name",
            "base_url",
            "api_key",
            "verify",  # the form's own field, not stored
            "priority",
            "weight",
            "enabled",
        )

    def clean_api_key(self) -> str:
        value: str = self.cleaned_data["api_key"]
        if not value and not self.instance.pk:
            raise forms.ValidationError("A new credential needs its API key.")
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        api_key, provider = cleaned.get("api_key"), cleaned.get("provider")
        if api_key and provider and not self.errors:
            try:
                credential_key_check(
                    provider=provider,
                    api_key=api_key,
                    base_url=cleaned.get("base_url") or "",
                    verify=bool(cleaned.get("verify")),
                )
            except ValidationError as exc:
                self.add_error("api_key", exc)
            except CredentialCheckFailed as exc:
                self.add_error("api_key", str(exc).replace("--no-verify", "untick the check"))
        return cleaned


@admin.register(UpstreamCredential)
class UpstreamCredentialAdmin(admin.ModelAdmin[UpstreamCredential]):
    form = UpstreamCredentialForm
    list_display = (
        "name",
        "provider",
        "endpoint",
        "masked_key",
        "priority",
        "weight",
        "enabled",
        "updated_at",
    )
    list_filter = ("provider", "enabled")
    search_fields = ("name", "base_url", "api_key_last4")
    actions = ("enable", "disable")

    @admin.display(description="Base URL")
    def endpoint(self, obj: UpstreamCredential) -> str:
        return obj.effective_base_url or "—"

    @admin.display(description="API key")
    def masked_key(self, obj: UpstreamCredential) -> str:
        return obj.masked_key

    def save_model(
        self, request: HttpRequest, obj: UpstreamCredential, form: Any, change: bool
    ) -> None:
        credential_save(credential=obj, api_key=form.cleaned_data.get("api_key") or "")

    @admin.action(description="Enable the selected credentials")
    def enable(self, request: HttpRequest, queryset: QuerySet[UpstreamCredential]) -> None:
        count = credentials_set_enabled(credentials=queryset, enabled=True)
        self.message_user(request, f"{count} credentials enabled.", messages.SUCCESS)

    @admin.action(description="Disable the selected credentials")
    def disable(self, request: HttpRequest, queryset: QuerySet[UpstreamCredential]) -> None:
        count = credentials_set_enabled(credentials=queryset, enabled=False)
        self.message_user(request, f"{count} credentials disabled.", messages.SUCCESS)
