"""The gateway's in-process snapshot of the catalog and the upstream credentials.

Built from the database off the hot path, immutable once built, swapped whole when the routing
version changes. Lookups on the request path are dictionary reads.
"""

import difflib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

import orjson

from billing.pricing import Prices, price_text

logger = logging.getLogger(__name__)


class ProviderKind(StrEnum):
    """The kinds of upstream a card's `provider` names: plain strings, so the request path
    needs no Django (the catalog's Provider choices, proxy/catalog/providers.py, take their
    values from here)."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"
    MISTRAL = "mistral"
    OPENAI_COMPATIBLE = "openai-compatible"


@dataclass(frozen=True, slots=True)
class Card:
    id: int
    title: str
    provider: str
    upstream_id: str
    type: str
    context_length: int
    max_output_tokens: int | None
    prices: Prices
    supports_tools: bool
    supports_vision: bool
    supports_json: bool
    supports_reasoning: bool
    first_byte_timeout: int | None
    credential_ids: frozenset[int]
    names: tuple[str, ...]
    created: int


@dataclass(frozen=True, slots=True)
class Upstream:
    id: int
    provider: str
    name: str
    base_url: str
    api_key: str = field(repr=False)
    priority: int
    weight: int


def card_payload(card: Card) -> dict[str, object]:
    """A /v1/models entry: OpenAI's model object plus what a caller needs to choose and budget."""
    return {
        "id": card.title,
        "object": "model",
        "created": card.created,
        "owned_by": card.provider,
        "provider": card.provider,
        "type": card.type,
        "upstream_id": card.upstream_id,
        "aliases": list(card.names[1:]),
        "context_length": card.context_length,
        "max_output_tokens": card.max_output_tokens,
        "capabilities": {
            "tools": card.supports_tools,
            "vision": card.supports_vision,
            "json": card.supports_json,
            "reasoning": card.supports_reasoning,
        },
        "pricing": {
            "input": price_text(card.prices.input),
            "output": price_text(card.prices.output),
            "cache_read": price_text(card.prices.cache_read),
            "cache_write": price_text(card.prices.cache_write),
        },
    }


class RoutingTable:
    """Active cards by every name (case-insensitive) and enabled upstreams by provider."""

    __slots__ = ("_by_name", "_entries", "_upstreams", "cards", "version")

    def __init__(self, cards: Iterable[Card], upstreams: Iterable[Upstream], version: int) -> None:
        self.version = version
        self.cards: tuple[Card, ...] = tuple(cards)
        by_name: dict[str, Card] = {}
        # Titles first, so an alias can never shadow another card's title.
        for card in self.cards:
            by_name[card.title.lower()] = card
        for card in self.cards:
            for name in card.names[1:]:
                by_name.setdefault(name.lower(), card)
        self._by_name: Mapping[str, Card] = MappingProxyType(by_name)
        self._entries: Mapping[int, bytes] = MappingProxyType(
            {card.id: orjson.dumps(card_payload(card)) for card in self.cards}
        )
        grouped: dict[str, list[Upstream]] = {}
        for upstream in upstreams:
            grouped.setdefault(upstream.provider, []).append(upstream)
        self._upstreams: Mapping[str, tuple[Upstream, ...]] = MappingProxyType(
            {
                provider: tuple(sorted(group, key=lambda u: (-u.priority, u.id)))
                for provider, group in grouped.items()
            }
        )

    def resolve(self, name: str) -> Card | None:
        return self._by_name.get(name.lower())

    def suggest(self, name: str, limit: int = 3) -> list[str]:
        """The titles closest to a name nobody answers to."""
        wanted = name.lower()
        scored: dict[str, float] = {}
        for known, card in self._by_name.items():
            score = difflib.SequenceMatcher(None, wanted, known).ratio()
            if score > scored.get(card.title, 0.0):
                scored[card.title] = score
        ranked = sorted(scored.items(), key=lambda item: (-item[1], item[0]))
        return [title for title, score in ranked[:limit] if score >= 0.4]

    def entry_json(self, card: Card) -> bytes:
        return self._entries[card.id]

    def list_json(self, cards: Iterable[Card] | None = None) -> bytes:
        chosen = self.cards if cards is None else cards
        return b'{"object":"list","data":[' + b",".join(self._entries[c.id] for c in chosen) + b"]}"

    def upstreams_for(self, card: Card) -> tuple[Upstream, ...]:
        candidates = self._upstreams.get(card.provider, ())
        if card.credential_ids:
            return tuple(u for u in candidates if u.id in card.credential_ids)
        return candidates
