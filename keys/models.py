from django.conf import settings
from django.db import models
from django.utils import timezone

from billing.pricing import price_text

# Money is stored to 1e-9 USD (CONTRACT.md §5).
MONEY_DIGITS = 18
MONEY_PLACES = 9


class BudgetPeriod(models.TextChoices):
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"
    MONTHLY = "monthly", "Monthly"
    NEVER = "never", "Never (a lifetime budget)"


def _money_field(help_text: str) -> models.DecimalField:
    return models.DecimalField(
        max_digits=MONEY_DIGITS,
        decimal_places=MONEY_PLACES,
        null=True,
        blank=True,
        help_text=help_text,
    )


class ApiKey(models.Model):
    """A gateway key. Only the SHA-256 of its secret is stored; the secret is shown once."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(
        max_length=16, help_text="The secret's first characters, to tell keys apart."
    )
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    rotated_from = models.OneToOneField(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="rotated_to",
        help_text="The key this one replaced when it was rotated.",
    )
    rpm = models.PositiveIntegerField("requests per minute", null=True, blank=True)
    tpm = models.PositiveIntegerField("tokens per minute", null=True, blank=True)
    allowed_models = models.JSONField(
        default=list, blank=True, help_text="Catalog card titles; empty allows every model."
    )
    max_request_cost = _money_field("US dollars one request may cost at most.")
    budget = _money_field("US dollars the key may spend per budget period.")
    budget_period = models.CharField(
        max_length=8, choices=BudgetPeriod.choices, default=BudgetPeriod.MONTHLY
    )
    allowed_networks = models.JSONField(
        default=list,
        blank=True,
        help_text="Client IP ranges in CIDR notation; empty allows any address.",
    )

    class Meta:
        ordering = ("-created_at", "-pk")
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_active(self) -> bool:
        return not self.is_revoked and not self.is_expired

    def limits_summary(self) -> list[str]:
        """Short phrases for the key's limits, for lists."""
        parts: list[str] = []
        if self.rpm:
            parts.append(f"{self.rpm:,} RPM")
        if self.tpm:
            parts.append(f"{self.tpm:,} TPM")
        if self.allowed_models:
            count = len(self.allowed_models)
            parts.append(
                self.allowed_models[0] if count == 1 else f"{count} models",
            )
        if self.max_request_cost is not None:
            parts.append(f"≤ ${price_text(self.max_request_cost)}/request")
        if self.allowed_networks:
            count = len(self.allowed_networks)
            parts.append(self.allowed_networks[0] if count == 1 else f"{count} IP ranges")
        return parts


class KeyChange(models.Model):
    """A committed change to a key, for gateway processes that have no Redis to hear it on.

    Without REDIS_URL the writers (keys/cache.py) add one row per changed key and every
    gateway polls the rows added since its last look (proxy/gateway/auth/key_cache.py), so a
    revoke made in any process reaches all of them within a second. Rows are kept for RETENTION
    only.
    """

    secret_hash = models.CharField(max_length=64)
    # Which process wrote it: that process's own gateway heard the change in-process already.
    origin = models.CharField(max_length=32)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"key change {self.pk}"


class SpendAlert(models.Model):
    """An e-mail sent about money, kept so each goes once per window (keys/alerts.py): a key's
    budget reaching 80% or 100% in its budget window, or an account's balance falling below
    TOKENBYTE_LOW_BALANCE after a top-up (the window is that top-up)."""

    class Kind(models.TextChoices):
        LOW_BALANCE = "low_balance", "Low balance"
        BUDGET_80 = "budget_80", "80% of a key's budget"
        BUDGET_100 = "budget_100", "A key's whole budget"

    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, null=True, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # A budget window's name (billing.periods: "2026-12", "lifetime"...) or "topup-<entry id>".
    window_name = models.CharField(max_length=32)
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = (
            models.UniqueConstraint(
                fields=("key", "kind", "window_name"),
                condition=models.Q(key__isnull=False),
                name="spend_alert_once_per_key_window",
            ),
            models.UniqueConstraint(
                fields=("account", "kind", "window_name"),
                condition=models.Q(key__isnull=True),
                name="spend_alert_once_per_account_window",
            ),
        )

    def __str__(self) -> str:
        return f"{self.kind} {self.window_name} ({self.account_id})"
