"""Reading LiteLLM's model price table (model_prices_and_context_window.json).

Only what TokenByte can route is kept: chat and embedding models of the providers we speak to.
Per-token prices become per-million prices, exactly (the JSON is read as Decimal, never float).
"""

import json
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from proxy.catalog.litellm_tiers import litellm_tiers
from proxy.catalog.providers import Provider
from proxy.catalog.specs import ONE_MILLION, CatalogDataError, parse_price

LITELLM_PROVIDERS = {
    "openai": Provider.OPENAI,
    "anthropic": Provider.ANTHROPIC,
    "gemini": Provider.GEMINI,
    "mistral": Provider.MISTRAL,
}
LITELLM_MODES = {"chat": "chat", "embedding": "embedding"}


@dataclass(frozen=True)
class LiteLLMEntry:
    provider: str
    upstream_id: str
    type: str
    input_price: Decimal
    output_price: Decimal
    cache_read_price: Decimal | None
    cache_write_price: Decimal | None
    context_length: int | None
    max_output_tokens: int | None
    supports_tools: bool
    supports_vision: bool
    supports_json: bool
    supports_reasoning: bool
    name: str = ""  # the entry's key in the table, e.g. "gemini/gemini-2.5-flash"
    deprecation_date: date | None = None  # the provider's announced shutdown date
    chat_completions: bool = True  # False where the entry lists endpoints without it
    text_output: bool = True  # False where the entry lists output modalities without text
    # Long-context and service tiers, 1-hour cache writes, server tools (litellm_tiers.py).
    price_tiers: dict[str, Any] = field(default_factory=dict)


def _per_million(value: Any, where: str) -> Decimal:
    return parse_price(value, where, scale=ONE_MILLION)


def _optional_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, Decimal) and value == value.to_integral_value() and value > 0:
        return int(value)
    return None


def _optional_date(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _lists_without(info: dict[str, Any], key: str, wanted: str) -> bool:
    listed = info.get(key)
    return isinstance(listed, list) and wanted not in listed


def read_litellm_file(path: Path) -> list[LiteLLMEntry]:
    try:
        # parse_float=Decimal: 2.5e-06 must become exactly 2.50 per million, not 2.4999999.
        document = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    except (OSError, json.JSONDecodeError) as exc:
        raise CatalogDataError(f"cannot read LiteLLM prices {path}: {exc}") from exc
    if not isinstance(document, dict):
        raise CatalogDataError(f"{path}: expected an object keyed by model name")
    return parse_litellm_prices(document)


def parse_litellm_prices(document: dict[str, Any]) -> list[LiteLLMEntry]:
    entries = []
    for name, info in document.items():
        if name == "sample_spec" or not isinstance(info, dict):
            continue
        provider = LITELLM_PROVIDERS.get(info.get("litellm_provider", ""))
        card_type = LITELLM_MODES.get(info.get("mode", ""))
        if provider is None or card_type is None or "input_cost_per_token" not in info:
            continue
        upstream_id = name.split("/", 1)[1] if name.startswith(f"{provider}/") else name
        where = f"LiteLLM entry {name!r}"
        cache_read = info.get("cache_read_input_token_cost")
        cache_write = info.get("cache_creation_input_token_cost")
        entries.append(
            LiteLLMEntry(
                provider=provider,
                upstream_id=upstream_id,
                type=card_type,
                input_price=_per_million(info["input_cost_per_token"], where),
                output_price=_per_million(info.get("output_cost_per_token", 0), where),
                cache_read_price=None if cache_read is None else _per_million(cache_read, where),
                cache_write_price=None if cache_write is None else _per_million(cache_write, where),
                context_length=_optional_int(info.get("max_input_tokens")),
                max_output_tokens=_optional_int(
                    info.get("max_output_tokens", info.get("max_tokens"))
                ),
                supports_tools=bool(info.get("supports_function_calling")),
                supports_vision=bool(info.get("supports_vision")),
                supports_json=bool(info.get("supports_response_schema")),
                supports_reasoning=bool(info.get("supports_reasoning")),
                name=name,
                deprecation_date=_optional_date(info.get("deprecation_date")),
                chat_completions=not (
                    card_type == "chat"
                    and _lists_without(info, "supported_endpoints", "/v1/chat/completions")
                ),
                text_output=not _lists_without(info, "supported_output_modalities", "text"),
                price_tiers=litellm_tiers(provider, upstream_id, info, where),
            )
        )
    return entries
