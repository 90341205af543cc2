"""Reads about API keys for the console, the admin and the gateway's miss path."""

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Count, F, Max, Q, QuerySet
from django.utils import timezone

from accounts.models import User
from billing.periods import budget_window
from billing.selectors import budget_spent
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


@dataclass(frozen=True)
class KeySpend:
    """A key's spend in its current budget window (the month's, for a key without a budget)."""

    spent: Decimal
    period: str  # the window's period: billing.periods DAILY, WEEKLY, MONTHLY or LIFETIME
    resets_at: datetime | None  # None: a lifetime budget never resets


def _spend_period(key: ApiKey) -> str:
    return key.budget_period if key.budget is not None else BudgetPeriod.MONTHLY


def keys_period_spend(
    *, keys: Sequence[ApiKey], now: datetime | None = None
) -> dict[int, KeySpend]:
    """What each key was charged in its current window, by key id (one read of billing's
    per-window spend, which the metering consumer keeps for every charge)."""
    now = now or timezone.now()
    windows = {key.pk: budget_window(_spend_period(key), now) for key in keys}
    spent = budget_spent(
        key_ids=list(windows), windows=sorted({window.name for window in windows.values()})
    )
    return {
        key.pk: KeySpend(
            spent=spent.get((key.pk, windows[key.pk].name), Decimal(0)),
            period=_spend_period(key),
            resets_at=windows[key.pk].resets_at,
        )
        for key in keys
    }


def key_names(*, owner_id: int, key_ids: Collection[int]) -> dict[int, str]:
    """The names of the owner's keys among `key_ids` (revoked ones too); others are absent."""
    rows = ApiKey.objects.filter(owner_id=owner_id, pk__in=key_ids).values_list("pk", "name")
    return dict(rows)


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


def key_ids_named(*, owner_id: int, text: str, limit: int = 100) -> list[int]:
    """The owner's keys whose name contains `text` (any case): the logs' search by key name."""
    rows = ApiKey.objects.filter(owner_id=owner_id, name__icontains=text).values_list("pk")
    return [pk for (pk,) in rows[:limit]]


def key_menu(*, owner_id: int) -> list[tuple[int, str]]:
    """Every key of the owner as (id, name), for a filter menu; revoked ones too."""
    return list(ApiKey.objects.filter(owner_id=owner_id).order_by("name").values_list("pk", "name"))
