"""Refreshing the shipped catalog file from a LiteLLM price table.

Cards already in the file keep their titles and aliases (and cards the table no longer lists
stay as they are); their prices and limits follow the table, and capabilities it states are
added. A current model the file lacks gets a card with a house-style title; a
dated snapshot becomes an alias of its model's card. Current means: a chat or embedding entry
of one of our four providers (LiteLLM's reading of which already keeps only those) whose
shutdown date (`deprecation_date`) is not today or past, that is no experimental release
(`-exp`, `experimental`, Mistral's `labs-`) or fine-tuning price (`ft:`), that is served on
chat completions and answers in text (where the entry lists endpoints and output modalities),
and that states its context and, for chat, output limits.
"""

import copy
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from billing.pricing import price_text
from proxy.catalog.litellm_prices import LiteLLMEntry
from proxy.catalog.price_tiers import merged_tiers, tiers_of
from proxy.catalog.specs import CAPABILITIES, card_spec_from_entry, ensure_unique_names
from proxy.catalog.titles import snapshot_base, snapshot_date, title_for

_EXPERIMENTAL = re.compile(r"(^|-)(exp|experimental)(-|$)|^labs-")


@dataclass
class RefreshReport:
    document: dict[str, Any]
    updated: list[str] = field(default_factory=list)  # titles whose prices or limits changed
    added: list[str] = field(default_factory=list)  # titles of new cards
    aliased: list[tuple[str, str]] = field(default_factory=list)  # (new alias, its card's title)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (upstream id, why)


def not_current(entry: LiteLLMEntry, today: date) -> str | None:
    """Why an entry the catalog lacks gets no card or alias; None if it is current."""
    if entry.deprecation_date is not None and entry.deprecation_date <= today:
        return f"shut down on {entry.deprecation_date.isoformat()}"
    if entry.upstream_id.startswith("ft:"):
        return "a fine-tuning price, not a model"
    if _EXPERIMENTAL.search(entry.upstream_id):
        return "experimental"
    if not entry.chat_completions:
        return "not served on chat completions"
    if not entry.text_output:
        return "does not answer in text"
    if entry.context_length is None or (entry.type == "chat" and entry.max_output_tokens is None):
        return "the price table gives no context or output limit"
    return None


def _price(current: Any, value: Decimal) -> str:
    """The file's own spelling when the amount is unchanged ("0" stays "0")."""
    if isinstance(current, str) and Decimal(current) == value:
        return current
    return price_text(value)


def _pricing(entry: LiteLLMEntry, current: dict[str, Any]) -> dict[str, Any]:
    pricing: dict[str, Any] = {
        "input": _price(current.get("input"), entry.input_price),
        "output": _price(current.get("output"), entry.output_price),
    }
    # Left out where equal to the input price: that is the file's default.
    for key, value in (
        ("cache_read", entry.cache_read_price),
        ("cache_write", entry.cache_write_price),
    ):
        if value is not None and value != entry.input_price:
            pricing[key] = _price(current.get(key), value)
    return {**pricing, **merged_tiers(tiers_of(current), entry.price_tiers)}


def _capabilities(entry: LiteLLMEntry) -> list[str]:
    flags = {
        "tools": entry.supports_tools,
        "vision": entry.supports_vision,
        "json": entry.supports_json,
        "reasoning": entry.supports_reasoning,
    }
    return [name for name in CAPABILITIES if flags[name]]


def _refreshed(model: dict[str, Any], entry: LiteLLMEntry) -> dict[str, Any]:
    # Capabilities the table states are added; one set by hand is never taken away.
    held = set(model.get("capabilities", [])) | set(_capabilities(entry))
    values: dict[str, Any] = {
        "pricing": _pricing(entry, model.get("pricing") or {}),
        "capabilities": [name for name in CAPABILITIES if name in held],
    }
    if entry.context_length:
        values["context_length"] = entry.context_length
    if entry.type == "chat" and entry.max_output_tokens:
        values["max_output_tokens"] = entry.max_output_tokens
    return {**model, **values}


def _new_card(title: str, entry: LiteLLMEntry) -> dict[str, Any]:
    return {
        "title": title,
        "provider": str(entry.provider),
        "upstream_id": entry.upstream_id,
        "type": entry.type,
        "context_length": entry.context_length,
        "max_output_tokens": entry.max_output_tokens if entry.type == "chat" else None,
        "capabilities": _capabilities(entry),
        "pricing": _pricing(entry, {}),
    }


def _unique_entries(entries: list[LiteLLMEntry]) -> list[LiteLLMEntry]:
    """One entry per provider and id; "gemini/x" wins over a bare "x" of the same provider."""
    chosen: dict[tuple[str, str], LiteLLMEntry] = {}
    for entry in entries:
        key = (entry.provider, entry.upstream_id.lower())
        if key not in chosen or entry.name.startswith(f"{entry.provider}/"):
            chosen[key] = entry
    return list(chosen.values())


class _Catalog:
    """The file's models with lookups by any name and by (provider, upstream id or alias)."""

    def __init__(self, models: list[dict[str, Any]]) -> None:
        self.models = models
        self.by_name: dict[str, dict[str, Any]] = {}
        self.by_id: dict[tuple[str, str], dict[str, Any]] = {}
        for model in models:
            self._index(model)

    def _index(self, model: dict[str, Any]) -> None:
        names = [model["upstream_id"], *model.get("aliases", [])]
        for name in (model["title"], *names):
            self.by_name.setdefault(name.lower(), model)
        for name in names:
            self.by_id.setdefault((model["provider"], name.lower()), model)

    def add(self, model: dict[str, Any]) -> None:
        # After the provider's last card, so the file stays grouped by provider.
        at = max(
            (i + 1 for i, m in enumerate(self.models) if m["provider"] == model["provider"]),
            default=len(self.models),
        )
        self.models.insert(at, model)
        self._index(model)

    def add_alias(self, model: dict[str, Any], alias: str) -> None:
        model["aliases"] = [*model.get("aliases", []), alias]
        self._index(model)


def _refresh_cards(
    models: list[dict[str, Any]], entries: list[LiteLLMEntry], report: RefreshReport
) -> None:
    """Prices and limits from each card's entry: its upstream id's, else its first alias's."""
    by_id = {(e.provider, e.upstream_id.lower()): e for e in entries}
    for model in models:
        names = [model["upstream_id"], *model.get("aliases", [])]
        entry = next(
            (e for n in names if (e := by_id.get((model["provider"], n.lower()))) is not None),
            None,
        )
        if entry is not None and entry.type == model.get("type", "chat"):
            refreshed = _refreshed(model, entry)
            if refreshed != model:
                model.update(refreshed)  # in place: the indexes hold this dict
                if model["title"] not in report.updated:
                    report.updated.append(model["title"])


def refresh_catalog(
    document: dict[str, Any], entries: list[LiteLLMEntry], *, today: date
) -> RefreshReport:
    """The catalog document refreshed from `entries` (the input is left as it was)."""
    result = copy.deepcopy(document)
    catalog = _Catalog(result["models"])
    report = RefreshReport(document=result)
    unique = _unique_entries(entries)

    existing = list(catalog.models)
    _refresh_cards(existing, unique, report)

    candidates = []
    for entry in unique:
        if (entry.provider, entry.upstream_id.lower()) in catalog.by_id:
            continue
        reason = not_current(entry, today)
        if reason is None:
            candidates.append(entry)
        else:
            report.skipped.append((entry.upstream_id, reason))
    # Models before their snapshots, and the newest snapshot first, so that a snapshot whose
    # model has no entry of its own names that model's card and older ones alias it.
    candidates.sort(key=lambda e: snapshot_date(e.upstream_id), reverse=True)
    candidates.sort(key=lambda e: snapshot_base(e.upstream_id) is not None)

    for entry in candidates:
        base = snapshot_base(entry.upstream_id)
        target = None
        for name in (base, f"{base}-latest") if base else ():
            target = catalog.by_id.get((entry.provider, name.lower()))
            if target is not None:
                break
        title = title_for(entry.upstream_id)
        if target is None:
            target = catalog.by_name.get(title.lower())
            if target is not None and (
                target["provider"] != entry.provider
                or Decimal(target["pricing"]["input"]) != entry.input_price
                or Decimal(target["pricing"].get("output", "0")) != entry.output_price
            ):
                report.skipped.append(
                    (entry.upstream_id, f"{target['title']} has that title at other prices")
                )
                continue
        if target is not None and target.get("type", "chat") != entry.type:
            report.skipped.append((entry.upstream_id, f"{target['title']} is another type"))
        elif target is not None:
            catalog.add_alias(target, entry.upstream_id)
            report.aliased.append((entry.upstream_id, target["title"]))
        elif entry.upstream_id.lower() in catalog.by_name:
            owner = catalog.by_name[entry.upstream_id.lower()]["title"]
            report.skipped.append((entry.upstream_id, f"the name is {owner}'s"))
        else:
            catalog.add(_new_card(title, entry))
            report.added.append(title)

    # Once more: a card the table lists only under a snapshot id follows it once that is its
    # alias, in this run as in the next (so a second run changes nothing).
    _refresh_cards(existing, unique, report)
    specs = [card_spec_from_entry(m, f"models[{i}]") for i, m in enumerate(catalog.models)]
    ensure_unique_names(specs)
    return report
