"""Checks and normalisation shared by the key services, the console forms and the CLI."""

import difflib
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError

from keys.models import MONEY_DIGITS, MONEY_PLACES, ApiKey, BudgetPeriod
from proxy.models import ModelCard

MAX_NETWORKS = 100
MAX_MONEY = Decimal(10) ** (MONEY_DIGITS - MONEY_PLACES) - Decimal(1).scaleb(-MONEY_PLACES)


def normalize_networks(values: Iterable[str]) -> list[str]:
    """CIDR ranges (a bare address is a range of one) in canonical form, duplicates dropped."""
    networks: dict[str, None] = {}
    for raw in values:
        text = raw.strip()
        if not text:
            continue
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValidationError(
                f"{text!r} is not an IP address or CIDR range (e.g. 203.0.113.0/24, 2001:db8::/32)."
            ) from None
        networks[str(network)] = None
    if len(networks) > MAX_NETWORKS:
        raise ValidationError(f"At most {MAX_NETWORKS} IP ranges per key.")
    return list(networks)


def resolve_model_titles(names: Iterable[str], *, keep: Iterable[str] = ()) -> list[str]:
    """Catalog card titles for titles or aliases (any case); unknown names are an error.

    Names in `keep` (a key's current allowlist) stay as they are even if their card is gone,
    so editing an old key does not fail on a model the catalog dropped meanwhile.
    """
    wanted = [name.strip() for name in names if name.strip()]
    kept = set(keep)
    cards = list(ModelCard.objects.only("title", "upstream_id", "aliases"))
    # Titles first, so another card's alias can never stand for a title (as in routing).
    title_by_name = {card.title.lower(): card.title for card in cards}
    for card in cards:
        for name in card.names():
            title_by_name.setdefault(name.lower(), card.title)
    titles: dict[str, None] = {}
    for name in wanted:
        title = name if name in kept else title_by_name.get(name.lower())
        if title is None:
            closest = difflib.get_close_matches(name, sorted(set(title_by_name.values())), n=3)
            hint = f" Did you mean {', '.join(repr(t) for t in closest)}?" if closest else ""
            raise ValidationError(f"Unknown model {name!r}.{hint}")
        titles[title] = None
    return list(titles)


def parse_expiry(text: str) -> datetime:
    """An ISO 8601 date (00:00 UTC that day) or date-time (UTC when it names no zone)."""
    try:
        moment = datetime.fromisoformat(text.strip())  # a bare date means its midnight
    except ValueError:
        raise ValidationError(
            f"{text!r} is not an ISO 8601 date or date-time (e.g. 2026-12-31 or "
            "2026-12-31T18:00:00+02:00)."
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def check_amount(value: Decimal | None, label: str) -> None:
    if value is None:
        return
    if not value.is_finite() or value <= 0:
        raise ValidationError(f"{label} must be a positive amount of US dollars.")
    if value > MAX_MONEY:
        raise ValidationError(f"{label} must be at most {MAX_MONEY:f} US dollars.")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MONEY_PLACES:
        raise ValidationError(f"{label} has more than {MONEY_PLACES} decimal places.")


def check_per_minute(value: int | None, label: str) -> None:
    if value is not None and not 1 <= value <= 2**31 - 1:
        raise ValidationError(f"{label} must be a whole number from 1 to {2**31 - 1}.")


@dataclass(frozen=True, kw_only=True)
class KeySpec:
    """Everything about a key that its owner chooses."""

    name: str
    note: str = ""
    rpm: int | None = None
    tpm: int | None = None
    allowed_models: tuple[str, ...] = ()
    max_request_cost: Decimal | None = None
    budget: Decimal | None = None
    budget_period: str = BudgetPeriod.MONTHLY
    expires_at: datetime | None = None
    allowed_networks: tuple[str, ...] = ()

    @classmethod
    def from_cleaned_data(cls, data: Mapping[str, Any]) -> "KeySpec":
        """From a form's cleaned_data (the console's and the admin's use these field names)."""
        return cls(
            name=data["name"],
            note=data["note"],
            rpm=data["rpm"],
            tpm=data["tpm"],
            allowed_models=tuple(data["allowed_models"]),
            max_request_cost=data["max_request_cost"],
            budget=data["budget"],
            budget_period=data["budget_period"],
            expires_at=data["expires_at"],
            allowed_networks=tuple(data["allowed_networks"]),
        )

    @classmethod
    def of(cls, key: ApiKey) -> "KeySpec":
        return cls(
            name=key.name,
            note=key.note,
            rpm=key.rpm,
            tpm=key.tpm,
            allowed_models=tuple(key.allowed_models),
            max_request_cost=key.max_request_cost,
            budget=key.budget,
            budget_period=key.budget_period,
            expires_at=key.expires_at,
            allowed_networks=tuple(key.allowed_networks),
        )


def clean_key_spec(spec: KeySpec, *, current_models: tuple[str, ...] = ()) -> dict[str, Any]:
    """The model fields for a spec, normalised, or a ValidationError naming each bad field.

    `current_models` is the key's allowlist before the change (see resolve_model_titles).
    """
    errors: dict[str, list[str]] = {}

    def attempt(field_name: str, check: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return check(*args, **kwargs)
        except ValidationError as exc:
            errors[field_name] = exc.messages
            return None

    name = spec.name.strip()
    if not 1 <= len(name) <= 100:
        errors["name"] = ["A key needs a name of 1 to 100 characters."]
    attempt("rpm", check_per_minute, spec.rpm, "Requests per minute")
    attempt("tpm", check_per_minute, spec.tpm, "Tokens per minute")
    attempt("max_request_cost", check_amount, spec.max_request_cost, "The per-request cost cap")
    attempt("budget", check_amount, spec.budget, "The budget")
    if spec.budget_period not in BudgetPeriod.values:
        errors["budget_period"] = [
            f"Unknown budget period {spec.budget_period!r}; use {', '.join(BudgetPeriod.values)}."
        ]
    models = attempt(
        "allowed_models", resolve_model_titles, spec.allowed_models, keep=current_models
    )
    networks = attempt("allowed_networks", normalize_networks, spec.allowed_networks)
    if errors:
        raise ValidationError(errors)
    return {
        "name": name,
        "note": spec.note.strip(),
        "rpm": spec.rpm,
        "tpm": spec.tpm,
        "allowed_models": models,
        "max_request_cost": spec.max_request_cost,
        "budget": spec.budget,
        "budget_period": spec.budget_period,
        "expires_at": spec.expires_at,
        "allowed_networks": networks,
    }
