"""The ledger: every movement of an account's money, append-only, and the balance it sums to."""

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from billing.histograms import histogram_empty
from billing.money import LEDGER_DIGITS, LEDGER_PLACES


def money_field(**kwargs: Any) -> "models.DecimalField[Decimal, Decimal]":
    return models.DecimalField(max_digits=LEDGER_DIGITS, decimal_places=LEDGER_PLACES, **kwargs)


class EntryKind(models.TextChoices):
    TOPUP = "topup", "Top-up"
    CHARGE = "charge", "Charge"
    REFUND = "refund", "Refund"
    ADJUSTMENT = "adjustment", "Adjustment"


class LedgerEntry(models.Model):
    """One movement of money: credits positive, charges negative. Never changed or deleted."""

    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="ledger_entries"
    )
    amount = money_field(help_text="US dollars: positive adds to the balance, negative takes.")
    kind = models.CharField(max_length=16, choices=EntryKind.choices)
    # The usage event a charge (or its refund) is for: at most one charge per event.
    event_id = models.CharField(max_length=64, blank=True, default="")
    request_id = models.CharField(max_length=128, blank=True, default="")
    note = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The operator who made it (none: the CLI or the gateway).",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "ledger entries"
        ordering = ("-created_at", "-id")
        indexes = (
            models.Index(fields=("account", "-created_at", "-id"), name="ledger_by_account"),
        )
        constraints = (
            models.UniqueConstraint(
                fields=("event_id",),
                condition=Q(kind="charge"),
                name="ledger_one_charge_per_event",
            ),
            models.CheckConstraint(condition=~Q(amount=0), name="ledger_amount_not_zero"),
            models.CheckConstraint(
                condition=~Q(kind="charge") | ~Q(event_id=""), name="ledger_charge_has_event"
            ),
        )

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount} ({self.account_id})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError("ledger entries are append-only: add a new entry instead")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError("ledger entries are append-only: add a new entry instead")


class Balance(models.Model):
    """The sum of an account's ledger, kept in the same transaction as each entry."""

    # Derived from the ledger, which protects an account with any money history; an account
    # without one may be deleted, and its zero balance with it.
    account = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="balance",
    )
    amount = money_field(default=0)
    # How far below zero the balance may go in postpaid mode (TOKENBYTE_BILLING_MODE).
    credit_limit = money_field(default=0, help_text="US dollars; postpaid billing only.")
    # Bumped by every change of `amount`: the gateways' mirrors of the balance (in Redis) take
    # a value only when it is newer than the one they hold (proxy/gateway/purse.py).
    version = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = (
            models.CheckConstraint(
                condition=Q(credit_limit__gte=0), name="balance_credit_limit_not_negative"
            ),
        )

    def __str__(self) -> str:
        return f"{self.amount} ({self.account_id})"


class BudgetSpend(models.Model):
    """What one key was charged in one budget window (billing/periods.py names them): kept for
    the day, ISO week, month and lifetime windows of every charge, so a key's budget reads one
    row whatever its period, and a period changed later still finds its spend."""

    key_id = models.BigIntegerField()
    window_name = models.CharField(max_length=16)  # "2026-12-02", "2026-W49", "2026-12", "lifetime"
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    amount = money_field(default=0)

    class Meta:
        constraints = (
            models.UniqueConstraint(
                fields=("key_id", "window_name"), name="budget_spend_per_window"
            ),
        )

    def __str__(self) -> str:
        return f"key {self.key_id} {self.window_name}: {self.amount}"


class Hold(models.Model):
    """A call's worst case held in the database, where the gateways hold while Redis is
    unreachable (billing/holds.py), so that together they never overdraw a balance or
    overspend a budget. It goes once the call's charge is recorded; one that expires (its
    process died) no longer counts and is swept by the next hold of its account."""

    id = models.CharField(max_length=64, primary_key=True)  # the call's usage event id
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    key_id = models.BigIntegerField()
    window_name = models.CharField(max_length=16, blank=True, default="")
    amount = money_field()
    expires_at = models.DateTimeField()

    class Meta:
        indexes = (models.Index(fields=("account", "expires_at"), name="holds_by_account"),)

    def __str__(self) -> str:
        return f"hold {self.id}: {self.amount}"


class UsageInbox(models.Model):
    """A usage event written, not yet recorded: the in-process recorder's durable step (one
    small row per event, so an answer waits for little), folded into its record, charge and
    rollups later, in larger batches, in the transaction that deletes it (billing/inbox.py)."""

    event_id = models.CharField(max_length=64, primary_key=True)
    event = models.TextField()  # UsageEvent.to_json
    written_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"usage event {self.event_id} (not yet recorded)"


RESPONSE_ID_LENGTH = 128  # longer ids are cut (none seen is near it)


class UsageRecord(models.Model):
    """One request that passed authentication, as its usage event told it: lean, one row each.

    Ids of keys, cards and credentials are plain numbers, not foreign keys: a record outlives
    the key or card it names, and billing stays below the apps that own them. Durations are
    whole microseconds. `event_id` makes recording idempotent: a replayed event changes nothing.
    """

    event_id = models.CharField(max_length=64, unique=True)
    request_id = models.CharField(max_length=128, db_index=True)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="usage_records"
    )
    key_id = models.BigIntegerField(null=True)
    card_id = models.BigIntegerField(null=True)
    credential_id = models.BigIntegerField(null=True)
    endpoint = models.CharField(max_length=32)
    model = models.CharField(max_length=200)
    provider = models.CharField(max_length=32, blank=True, default="")
    status = models.PositiveSmallIntegerField()
    error_code = models.CharField(max_length=64, blank=True, default="")
    stream = models.BooleanField(default=False)
    client_disconnected = models.BooleanField(default=False)
    uncached_input_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    estimated = models.BooleanField(
        default=False, help_text="Counted by the gateway, not reported."
    )
    cache_write_1h_tokens = models.BigIntegerField(default=0)
    service_tier = models.CharField(
        max_length=32, blank=True, default="", help_text="As the upstream reported it."
    )
    server_tool_calls = models.JSONField(
        default=dict, blank=True, help_text="Server-side tool calls billed per call, by tool."
    )
    cost = models.DecimalField(max_digits=LEDGER_DIGITS + 3, decimal_places=12)  # exact
    charged = money_field(help_text="The ledger charge: the cost rounded to 1e-9 USD.")
    started_at = models.DateTimeField()
    latency_us = models.BigIntegerField()
    ttfb_us = models.BigIntegerField(null=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    upstream_request_id = models.CharField(max_length=128, blank=True, default="")
    # The `id` of the answer's body (`chatcmpl-…`, `msg_…`): GET /v1/generation finds it.
    response_id = models.CharField(max_length=RESPONSE_ID_LENGTH, blank=True, default="")
    # Every upstream try in order (billing/events.py UpstreamAttempt as objects): a failover's
    # waterfall on /logs/<id>/.
    attempt_log = models.JSONField(default=list, blank=True)

    class Meta:
        indexes = (
            # /logs/ pages walk these newest first (billing/usage_search.py): the id breaks ties
            # between records of one microsecond, so a keyset page never skips or repeats one.
            models.Index(fields=("account", "-started_at", "-id"), name="usage_by_account"),
            models.Index(fields=("account", "key_id", "-started_at", "-id"), name="usage_by_key"),
            models.Index(fields=("account", "model", "-started_at", "-id"), name="usage_by_model"),
            models.Index(fields=("account", "response_id"), name="usage_by_response_id"),
            # The search box finds a request by its upstream's id; and reads the error codes
            # an account has met from the few records that have one.
            models.Index(
                fields=("account", "upstream_request_id"),
                name="usage_by_upstream_id",
                condition=~models.Q(upstream_request_id=""),
            ),
            models.Index(
                fields=("account", "error_code"),
                name="usage_error_codes",
                condition=~models.Q(error_code=""),
            ),
            # Retention deletes the oldest records first (billing/retention.py).
            models.Index(fields=("started_at",), name="usage_by_start"),
        )

    def __str__(self) -> str:
        return f"{self.request_id} {self.model} {self.cost}"


class RollupPeriod(models.TextChoices):
    MINUTE = "minute", "Minute"
    HOUR = "hour", "Hour"
    DAY = "day", "Day"


def cost_field(**kwargs: Any) -> "models.DecimalField[Decimal, Decimal]":
    # A record's exact cost has 12 decimals; sums keep them all.
    return models.DecimalField(max_digits=LEDGER_DIGITS + 3, decimal_places=12, **kwargs)


class UsageRollup(models.Model):
    """The usage records of one account, key, model (card title) and provider in one UTC
    minute, hour or day, summed in the transaction that wrote them (billing/rollups.py), so
    dashboards read a few rows instead of every record, and outlive the records' retention.

    `key_id` is 0 for a request without a key: NULLs would not meet in the unique constraint.
    The histograms are JSON lists of HISTOGRAM_SIZE counts (billing/histograms.py): portable to
    SQLite, unlike an ArrayField, and 120 integer columns would say nothing more; they are
    only ever summed in Python, so SQL never needs to look inside them.
    """

    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    period = models.CharField(max_length=8, choices=RollupPeriod.choices)
    starts_at = models.DateTimeField()
    key_id = models.BigIntegerField()
    model = models.CharField(max_length=200)
    provider = models.CharField(max_length=32, blank=True, default="")
    requests = models.BigIntegerField(default=0)
    status_2xx = models.BigIntegerField(default=0)
    status_4xx = models.BigIntegerField(default=0)
    status_5xx = models.BigIntegerField(default=0)
    # By error code, whatever the status: the client left mid-way, or the call was cancelled.
    client_disconnected = models.BigIntegerField(default=0)
    cancelled = models.BigIntegerField(default=0)
    streamed = models.BigIntegerField(default=0)
    uncached_input_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cost = cost_field(default=0)
    charged = money_field(default=0)
    latency_histogram = models.JSONField(default=histogram_empty)
    ttfb_histogram = models.JSONField(default=histogram_empty)  # requests with a first byte

    class Meta:
        constraints = (
            # Also the index of the dashboards' reads (account, period, a range of starts).
            models.UniqueConstraint(
                fields=("account", "period", "starts_at", "key_id", "model", "provider"),
                name="usage_rollup_per_bucket",
            ),
        )

    def __str__(self) -> str:
        return f"{self.period} {self.starts_at:%Y-%m-%d %H:%M} {self.model}: {self.requests}"


# Stored bodies and stored responses have modules of their own (billing/body_models.py,
# billing/response_models.py); imported here so that Django registers the models with the app.
from billing.body_models import UsageBody as UsageBody  # noqa: E402
from billing.response_models import StoredResponse as StoredResponse  # noqa: E402
from billing.response_models import StoredResponseItem as StoredResponseItem  # noqa: E402
