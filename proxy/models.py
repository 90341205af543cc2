from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models.functions import Lower

from proxy.catalog.crypto import decrypt_secret, encrypt_secret
from proxy.catalog.price_tiers import CatalogDataError, build_prices
from proxy.catalog.providers import Provider, default_base_url


class ModelType(models.TextChoices):
    CHAT = "chat", "Chat"
    EMBEDDING = "embedding", "Embedding"


class CardSource(models.TextChoices):
    CATALOG = "catalog", "Shipped catalog"
    LITELLM = "litellm", "LiteLLM price import"
    MANUAL = "manual", "Added by an operator"


def _price_field(help_text: str) -> "models.DecimalField[Decimal, Decimal]":
    return models.DecimalField(
        max_digits=14,
        decimal_places=6,
        default=Decimal(0),
        validators=[MinValueValidator(Decimal(0))],
        help_text=help_text + " (US dollars per million tokens)",
    )


class ModelCard(models.Model):
    """One model as users see it: the title is what they pass as `model`."""

    title = models.CharField(max_length=100, unique=True)
    provider = models.CharField(max_length=32, choices=Provider.choices, db_index=True)
    upstream_id = models.CharField(
        max_length=200, help_text="The model id the provider's API expects."
    )
    aliases = models.JSONField(
        default=list,
        blank=True,
        help_text="Other names accepted for this model; the upstream id always is one.",
    )
    type = models.CharField(max_length=16, choices=ModelType.choices, default=ModelType.CHAT)
    context_length = models.PositiveIntegerField()
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    supports_tools = models.BooleanField(default=False)
    supports_vision = models.BooleanField(default=False)
    supports_json = models.BooleanField(default=False)
    supports_reasoning = models.BooleanField(default=False)
    input_price = _price_field("Uncached input")
    output_price = _price_field("Output, reasoning included")
    cache_read_price = _price_field("Cached input read")
    cache_write_price = _price_field("Cache write")
    price_tiers = models.JSONField(
        default=dict,
        blank=True,
        help_text="Prices beyond the four above: cache_write_1h, long_context, service_tiers, "
        "server_tools (README: What is priced).",
    )
    first_byte_timeout = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Seconds to wait for the upstream's first byte; empty for the default "
        "(longer for reasoning models).",
    )
    credentials: models.ManyToManyField["UpstreamCredential", Any] = models.ManyToManyField(
        "UpstreamCredential",
        blank=True,
        related_name="cards",
        help_text="Serve only through these credentials; empty means every enabled credential "
        "of the card's provider.",
    )
    active = models.BooleanField(default=True)
    source = models.CharField(max_length=16, choices=CardSource.choices, default=CardSource.MANUAL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("provider", "title")
        constraints = [
            models.UniqueConstraint(Lower("title"), name="modelcard_title_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.title

    def names(self) -> list[str]:
        """Every name this card answers to, title first."""
        seen: dict[str, str] = {}
        for name in (self.title, self.upstream_id, *self.aliases):
            seen.setdefault(name.lower(), name)
        return list(seen.values())

    def clean(self) -> None:
        try:
            build_prices(
                input=self.input_price,
                output=self.output_price,
                cache_read=self.cache_read_price,
                cache_write=self.cache_write_price,
                tiers=self.price_tiers,
            )
        except CatalogDataError as exc:
            raise ValidationError({"price_tiers": str(exc)}) from exc
        if not isinstance(self.aliases, list) or not all(
            isinstance(alias, str) and alias.strip() for alias in self.aliases
        ):
            raise ValidationError({"aliases": "Aliases must be a list of non-empty strings."})
        self.aliases = [alias.strip() for alias in self.aliases]
        if self.type == ModelType.CHAT and not self.max_output_tokens:
            raise ValidationError({"max_output_tokens": "Chat models need a maximum output."})
        taken = {
            name.lower(): card.title
            for card in ModelCard.objects.exclude(pk=self.pk)
            for name in (card.title, *card.aliases)
        }
        for name in (self.title, *self.aliases):
            if name.lower() in taken:
                raise ValidationError(
                    f"The name {name!r} is already used by {taken[name.lower()]}."
                )


class UpstreamCredential(models.Model):
    """An API key for one provider account; several per provider are balanced and failed over."""

    provider = models.CharField(max_length=32, choices=Provider.choices, db_index=True)
    name = models.CharField(max_length=100)
    base_url = models.URLField(
        max_length=500, blank=True, help_text="Empty: the provider's official API."
    )
    api_key_encrypted = models.TextField(editable=False)
    api_key_last4 = models.CharField(max_length=4, editable=False)
    priority = models.IntegerField(
        default=0, help_text="Higher is tried first; equal priorities share load by weight."
    )
    weight = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("provider", "-priority", "name")
        constraints = [
            models.UniqueConstraint(fields=("provider", "name"), name="credential_provider_name"),
        ]

    def __str__(self) -> str:
        return f"{self.provider}/{self.name} ({self.masked_key})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.api_key_encrypted:
            raise ValueError("set_api_key() before saving a credential")
        super().save(*args, **kwargs)

    @property
    def masked_key(self) -> str:
        return f"…{self.api_key_last4}" if self.api_key_last4 else ""

    @property
    def effective_base_url(self) -> str:
        return (self.base_url or default_base_url(self.provider)).rstrip("/")

    def set_api_key(self, raw: str) -> None:
        self.api_key_encrypted = encrypt_secret(raw)
        self.api_key_last4 = raw[-4:]

    def get_api_key(self) -> str:
        return decrypt_secret(self.api_key_encrypted)

    def clean(self) -> None:
        if self.provider == Provider.OPENAI_COMPATIBLE and not self.base_url:
            raise ValidationError({"base_url": "An OpenAI-compatible upstream needs a base URL."})


class RoutingVersion(models.Model):
    """One row, bumped with every change to the cards or the credentials (proxy/signals.py).

    Every gateway process polls it (proxy/gateway/runtime.py) and reloads its routing table when it
    moved: in the database, so a change made by any process reaches all of them, embedded mode
    included, where the cache is each process's own.
    """

    version = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"routing version {self.version}"
