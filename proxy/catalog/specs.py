"""Parsing and validating model-card data (the shipped catalog file, LiteLLM price tables)."""

import json
from dataclasses import dataclass, field, fields
from decimal import Decimal
from pathlib import Path
from typing import Any

from proxy.catalog.price_tiers import (
    PRICE_QUANTUM,
    CatalogDataError,
    build_prices,
    parse_price,
    tiers_of,
)
from proxy.catalog.providers import Provider
from proxy.models import ModelType

CATALOG_FILE = Path(__file__).resolve().parent / "data" / "catalog.json"
CAPABILITIES = ("tools", "vision", "json", "reasoning")
ONE_MILLION = Decimal(1_000_000)
__all__ = ["PRICE_QUANTUM", "CardSpec", "CatalogDataError", "parse_price"]


@dataclass(frozen=True)
class CardSpec:
    """Everything a model card holds that data files can set."""

    title: str
    provider: str
    upstream_id: str
    type: str
    context_length: int
    max_output_tokens: int | None
    input_price: Decimal
    output_price: Decimal
    cache_read_price: Decimal
    cache_write_price: Decimal
    aliases: tuple[str, ...] = ()
    supports_tools: bool = False
    supports_vision: bool = False
    supports_json: bool = False
    supports_reasoning: bool = False
    first_byte_timeout: int | None = None
    # Long-context and service tiers, 1-hour cache writes, server tools (price_tiers.py).
    price_tiers: dict[str, Any] = field(default_factory=dict)

    def model_fields(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["aliases"] = list(self.aliases)
        return values


@dataclass
class _Reader:
    where: str
    raw: dict[str, Any] = field(default_factory=dict)

    def fail(self, message: str) -> CatalogDataError:
        return CatalogDataError(f"{self.where}: {message}")

    def text(self, key: str, source: dict[str, Any] | None = None) -> str:
        value = (self.raw if source is None else source).get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"'{key}' must be a non-empty string")
        return value.strip()

    def positive_int(self, key: str, *, required: bool) -> int | None:
        value = self.raw.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise self.fail(f"'{key}' must be a positive integer")
        return value

    def price(self, pricing: dict[str, Any], key: str, default: Decimal | None) -> Decimal:
        value = pricing.get(key)
        if value is None:
            if default is None:
                raise self.fail(f"'pricing.{key}' is required")
            return default
        return parse_price(value, f"{self.where}: 'pricing.{key}'")


def card_spec_from_entry(raw: Any, where: str) -> CardSpec:
    if not isinstance(raw, dict):
        raise CatalogDataError(f"{where}: must be an object")
    reader = _Reader(where, raw)
    title = reader.text("title")
    reader.where = f"{where} ({title})"
    provider = reader.text("provider")
    if provider not in Provider.values:
        raise reader.fail(f"unknown provider {provider!r}; one of {', '.join(Provider.values)}")
    card_type = raw.get("type", ModelType.CHAT)
    if card_type not in ModelType.values:
        raise reader.fail(f"'type' must be one of {', '.join(ModelType.values)}")
    capabilities = raw.get("capabilities", [])
    if not isinstance(capabilities, list) or any(c not in CAPABILITIES for c in capabilities):
        raise reader.fail(f"'capabilities' must be a list drawn from {', '.join(CAPABILITIES)}")
    aliases = raw.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
        raise reader.fail("'aliases' must be a list of non-empty strings")
    pricing = raw.get("pricing")
    if not isinstance(pricing, dict):
        raise reader.fail("'pricing' must be an object")
    input_price = reader.price(pricing, "input", None)
    output_price = reader.price(pricing, "output", Decimal(0))
    cache_read_price = reader.price(pricing, "cache_read", input_price)
    cache_write_price = reader.price(pricing, "cache_write", input_price)
    price_tiers = tiers_of(pricing)
    build_prices(  # validates the tiers now, not when the gateway loads the card
        input=input_price,
        output=output_price,
        cache_read=cache_read_price,
        cache_write=cache_write_price,
        tiers=price_tiers,
        where=f"{reader.where}: 'pricing'",
    )
    return CardSpec(
        title=title,
        provider=provider,
        upstream_id=reader.text("upstream_id"),
        type=card_type,
        context_length=reader.positive_int("context_length", required=True) or 0,
        max_output_tokens=reader.positive_int(
            "max_output_tokens", required=card_type == ModelType.CHAT
        ),
        input_price=input_price,
        output_price=output_price,
        cache_read_price=cache_read_price,
        cache_write_price=cache_write_price,
        price_tiers=price_tiers,
        aliases=tuple(a.strip() for a in aliases),
        supports_tools="tools" in capabilities,
        supports_vision="vision" in capabilities,
        supports_json="json" in capabilities,
        supports_reasoning="reasoning" in capabilities,
        first_byte_timeout=reader.positive_int("first_byte_timeout", required=False),
    )


def read_catalog_file(path: Path = CATALOG_FILE) -> list[CardSpec]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CatalogDataError(f"cannot read catalog {path}: {exc}") from exc
    entries = document.get("models") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise CatalogDataError(f"{path}: expected an object with a 'models' list")
    specs = [card_spec_from_entry(entry, f"models[{i}]") for i, entry in enumerate(entries)]
    ensure_unique_names(specs)
    return specs


def ensure_unique_names(specs: list[CardSpec]) -> None:
    owner: dict[str, str] = {}
    for spec in specs:
        for name in {spec.title.lower(), *(alias.lower() for alias in spec.aliases)}:
            if name in owner:
                raise CatalogDataError(
                    f"the name {name!r} is used by {owner[name]} and {spec.title}"
                )
            owner[name] = spec.title
