from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from proxy.models import CardSource, ModelCard, UpstreamCredential


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
        # An operator's edit takes the card over: `bootstrap` will no longer overwrite it.
        obj.source = CardSource.MANUAL
        super().save_model(request, obj, form, change)

    @admin.action(description="Activate the selected models")
    def activate(self, request: HttpRequest, queryset: QuerySet[ModelCard]) -> None:
        self._set_active(request, queryset, True)

    @admin.action(description="Deactivate the selected models")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[ModelCard]) -> None:
        self._set_active(request, queryset, False)

    def _set_active(self, request: HttpRequest, queryset: QuerySet[ModelCard], on: bool) -> None:
        count = 0
        for card in queryset:  # save() per card so the gateways hear of the change
            card.active = on
            card.source = CardSource.MANUAL
            card.save(update_fields=["active", "source", "updated_at"])
            count += 1
        self.message_user(request, f"{count} models {'activated' if on else 'deactivated'}.")


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

    class Meta:
        model = UpstreamCredential
        fields = ("provider", "name", "base_url", "api_key", "priority", "weight", "enabled")

    def clean_api_key(self) -> str:
        value: str = self.cleaned_data["api_key"]
        if not value and not self.instance.pk:
            raise forms.ValidationError("A new credential needs its API key.")
        if any(ch.isspace() for ch in value):
            raise forms.ValidationError("An API key contains no whitespace.")
        return value

    def save(self, commit: bool = True) -> UpstreamCredential:
        if self.cleaned_data.get("api_key"):
            self.instance.set_api_key(self.cleaned_data["api_key"])
        return super().save(commit=commit)


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

    @admin.action(description="Enable the selected credentials")
    def enable(self, request: HttpRequest, queryset: QuerySet[UpstreamCredential]) -> None:
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable the selected credentials")
    def disable(self, request: HttpRequest, queryset: QuerySet[UpstreamCredential]) -> None:
        self._set_enabled(request, queryset, False)

    def _set_enabled(
        self, request: HttpRequest, queryset: QuerySet[UpstreamCredential], on: bool
    ) -> None:
        count = 0
        for credential in queryset:
            credential.enabled = on
            credential.save(update_fields=["enabled", "updated_at"])
            count += 1
        self.message_user(
            request, f"{count} credentials {'enabled' if on else 'disabled'}.", messages.SUCCESS
        )
