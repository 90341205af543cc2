"""Reads about API keys for the console, the admin and the gateway's miss path."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import Count, F, Max, Q, QuerySet
from django.utils import timezone

from accounts.models import User
from keys.models import ApiKey, BudgetPeriod
from proxy.models import ModelCard


def keys_of(owner: User) -> QuerySet[ApiKey]:
    """The owner's keys: usable ones first, newest first."""
    return ApiKey.objects.filter(owner=owner).order_by(
        F("revoked_at").desc(nulls_first=True), "-created_at", "-pk"
    )


@dataclass(frozen=True)
class KeysUsage:
    """How far an owner has got with their keys: what the dashboard's checklist needs."""

    total: int  # every key ever minted, revoked and expired ones included
    active: int  # neither revoked nor expired: usable right now
    last_used_at: datetime | None  # the latest request any of them authenticated


def keys_usage(*, owner: User, now: datetime | None = None) -> KeysUsage:
    """One aggregate read. `last_used_at` is the gateway's record (batched: it shows a request
    within about a minute, keys/services.py key_last_used_record); it is the one per-key trace
    of use until usage records arrive with billing."""
    now = now or timezone.now()
    usable = Q(revoked_at__isnull=True) & (Q(expires_at__isnull=True) | Q(expires_at__gt=now))
    stats = ApiKey.objects.filter(owner=owner).aggregate(
        total=Count("pk"), active=Count("pk", filter=usable), last_used_at=Max("last_used_at")
    )
    return KeysUsage(
        total=stats["total"], active=stats["active"], last_used_at=stats["last_used_at"]
    )


def budget_period_start(period: str, now: datetime) -> datetime | None:
    """When the budget period containing `now` began (UTC calendar); None for a lifetime budget.

    Weeks start on Monday (ISO 8601).
    """
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == BudgetPeriod.DAILY:
        return day
    if period == BudgetPeriod.WEEKLY:
        return day - timedelta(days=day.weekday())
    if period == BudgetPeriod.MONTHLY:
        return day.replace(day=1)
    return None


def keys_period_spend(*, keys: Sequence[ApiKey], now: datetime | None = None) -> dict[int, Decimal]:
    """US dollars each key has spent in its current budget period, by key id (one read).

    Nothing is metered yet: usage records arrive with the billing issue, which sums them here
    from budget_period_start(key.budget_period, now) on. Until then no key has spent anything.
    """
    return {key.pk: Decimal(0) for key in keys}


@dataclass(frozen=True)
class ModelChoice:
    title: str
    provider: str
    type: str


def model_choices(*, include: list[str] | tuple[str, ...] = ()) -> list[ModelChoice]:
    """Active catalog models for the allowlist picker, plus titles a key already lists."""
    choices = [
        ModelChoice(card.title, card.provider, card.type)
        for card in ModelCard.objects.filter(active=True).only("title", "provider", "type")
    ]
    known = {choice.title for choice in choices}
    choices.extend(ModelChoice(title, "", "") for title in include if title not in known)
    return choices
