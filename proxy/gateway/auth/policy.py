"""What the gateway knows of one API key: an immutable leaf type, shared by concurrent requests."""

import ipaddress
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from proxy.gateway.errors import PermissionDenied
from proxy.gateway.routing import Card

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# How many allowed titles a 403 names before it says "and N more".
LISTED_MODELS = 5


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """Everything the hot path needs about one key. Immutable; shared by concurrent requests."""

    key_id: int
    account_id: int
    name: str
    prefix: str
    rpm: int | None
    tpm: int | None
    allowed_models: frozenset[str]  # card titles; empty allows every model
    max_request_cost: Decimal | None
    budget: Decimal | None
    budget_period: str
    expires_at: float | None  # epoch seconds
    networks: tuple[IPNetwork, ...]  # empty allows any client address
    # The account stores its calls' bodies (pipeline/bodies.py); off by default.
    log_bodies: bool = False

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> "KeyPolicy":
        """From a cache entry (keys/cache.py key_cache_entry)."""
        return cls(
            key_id=entry["id"],
            account_id=entry["account"],
            name=entry["name"],
            prefix=entry["prefix"],
            rpm=entry["rpm"],
            tpm=entry["tpm"],
            allowed_models=frozenset(entry["models"]),
            max_request_cost=_decimal(entry["max_request_cost"]),
            budget=_decimal(entry["budget"]),
            budget_period=entry["budget_period"],
            expires_at=entry["expires_at"],
            networks=tuple(ipaddress.ip_network(text) for text in entry["networks"]),
            # .get: entries cached before body logging existed say nothing of it.
            log_bodies=entry.get("log_bodies", False),
        )

    def allows_card(self, card: Card) -> bool:
        # By title: a card's title and its aliases are one model.
        return not self.allowed_models or card.title in self.allowed_models

    def check_card(self, card: Card) -> None:
        if self.allows_card(card):
            return
        allowed = sorted(self.allowed_models)
        listed = ", ".join(allowed[:LISTED_MODELS])
        if len(allowed) > LISTED_MODELS:
            listed += f" and {len(allowed) - LISTED_MODELS} more"
        raise PermissionDenied(
            f"This API key may not use the model '{card.title}'. It allows: {listed}. "
            "Change the key's allowed models in the console under /keys/.",
            param="model",
            code="model_not_allowed",
        )


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)
