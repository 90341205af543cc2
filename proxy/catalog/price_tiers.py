"""A card's prices beyond its four standard ones, as the catalog file and the database hold them,
and the billing Prices built from them.

In a card's `pricing` (US dollars per million tokens; per call for server tools), beside
input, output, cache_read and cache_write:

    "cache_write_1h": "6.00",                       # Anthropic's 1-hour cache writes
    "long_context": [{"above": 200000, "input": "6.00", "output": "22.50", ...}],
    "service_tiers": {"flex": {"multiplier": "0.5"},
                      "priority": {"input": "2.50", "output": "20.00", "long_context": [...]}},
    "server_tools": {"web_search": "0.01", "web_fetch": "0"}

A long-context tier prices the whole request once its prompt has more than `above` tokens.
A price a tier leaves out is the one of the table it sits in (the standard prices, or its
service tier's). A service tier given as a multiplier scales the standard prices, long-context
tiers included; one given as prices has exactly the long-context tiers it lists.
"""

from decimal import Decimal, InvalidOperation
from typing import Any

from billing.pricing import LongContext, Prices, Rates, TierPrices

PRICE_QUANTUM = Decimal("0.000001")
EXTRA_KEYS = ("cache_write_1h", "long_context", "service_tiers", "server_tools")
RATE_KEYS = ("input", "output", "cache_read", "cache_write", "cache_write_1h")
# Tiers that mean the standard prices: a card cannot price them apart.
STANDARD_NAMES = frozenset({"default", "standard", "auto", "standard_only"})


class CatalogDataError(ValueError):
    """Catalog input that cannot be loaded; the message says which entry and field."""


def parse_price(value: Any, where: str, *, scale: Decimal = Decimal(1)) -> Decimal:
    """A non-negative decimal price, multiplied by `scale` before rounding to 1e-6."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise CatalogDataError(f'{where} must be a decimal string such as "2.50"')
    try:
        price = Decimal(value)
    except InvalidOperation as exc:
        raise CatalogDataError(f"{where} is not a number: {value!r}") from exc
    if not price.is_finite() or price < 0:
        raise CatalogDataError(f"{where} must be zero or more")
    return (price * scale).quantize(PRICE_QUANTUM)


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CatalogDataError(f"{where} must be an object")
    return value


def _rates(raw: dict[str, Any], where: str, defaults: Rates, *, scale: Decimal) -> Rates:
    values = {
        key: parse_price(raw[key], f"{where}.{key}", scale=scale)
        if raw.get(key) is not None
        else getattr(defaults, key)
        for key in RATE_KEYS
    }
    return Rates(**values)


def _long_context(raw: Any, where: str, table: Rates) -> tuple[LongContext, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise CatalogDataError(f"{where} must be a list")
    tiers = []
    for index, entry in enumerate(raw):
        at = f"{where}[{index}]"
        entry = _object(entry, at)
        above = entry.get("above")
        if not isinstance(above, int) or isinstance(above, bool) or above <= 0:
            raise CatalogDataError(f"{at}.above must be a positive number of prompt tokens")
        unknown = set(entry) - {"above", *RATE_KEYS}
        if unknown:
            raise CatalogDataError(f"{at} has unknown keys: {', '.join(sorted(unknown))}")
        tiers.append(LongContext(above, _rates(entry, at, table, scale=Decimal(1))))
    thresholds = [tier.above for tier in tiers]
    if thresholds != sorted(set(thresholds)):
        raise CatalogDataError(f"{where} must be in ascending order of 'above', each once")
    return tuple(tiers)


def _scaled(rates: Rates, factor: Decimal) -> Rates:
    return Rates(*((getattr(rates, key) * factor).quantize(PRICE_QUANTUM) for key in RATE_KEYS))


def _service_tier(raw: Any, where: str, base: TierPrices) -> TierPrices:
    raw = _object(raw, where)
    if "multiplier" in raw:
        if set(raw) != {"multiplier"}:
            raise CatalogDataError(f"{where}: a multiplier tier has no prices of its own")
        factor = parse_price(raw["multiplier"], f"{where}.multiplier")
        return TierPrices(
            _scaled(base.rates, factor),
            tuple(LongContext(t.above, _scaled(t.rates, factor)) for t in base.long_context),
        )
    unknown = set(raw) - {*RATE_KEYS, "long_context"}
    if unknown:
        raise CatalogDataError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
    rates = _rates(raw, where, base.rates, scale=Decimal(1))
    return TierPrices(rates, _long_context(raw.get("long_context"), f"{where}.long_context", rates))


def build_prices(
    *,
    input: Decimal,
    output: Decimal,
    cache_read: Decimal,
    cache_write: Decimal,
    tiers: dict[str, Any],
    where: str = "pricing",
) -> Prices:
    """Billing's Prices for a card; raises CatalogDataError for malformed tiers."""
    tiers = _object(tiers, where)
    unknown = set(tiers) - set(EXTRA_KEYS)
    if unknown:
        raise CatalogDataError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
    one_hour = tiers.get("cache_write_1h")
    flat = Prices(
        input=input,
        output=output,
        cache_read=cache_read,
        cache_write=cache_write,
        cache_write_1h=None
        if one_hour is None
        else parse_price(one_hour, f"{where}.cache_write_1h"),
    )
    base = TierPrices(
        flat.rates, _long_context(tiers.get("long_context"), f"{where}.long_context", flat.rates)
    )
    service_tiers = []
    for name, raw in _object(tiers.get("service_tiers") or {}, f"{where}.service_tiers").items():
        if name in STANDARD_NAMES:
            raise CatalogDataError(f"{where}.service_tiers.{name} is the standard tier")
        service_tiers.append((name, _service_tier(raw, f"{where}.service_tiers.{name}", base)))
    tools = tuple(
        (name, parse_price(price, f"{where}.server_tools.{name}"))
        for name, price in _object(tiers.get("server_tools") or {}, f"{where}.server_tools").items()
    )
    return Prices(
        input=input,
        output=output,
        cache_read=cache_read,
        cache_write=cache_write,
        cache_write_1h=flat.cache_write_1h,
        long_context=base.long_context,
        service_tiers=tuple(sorted(service_tiers)),
        server_tools=tuple(sorted(tools)),
    )


def tiers_of(pricing: dict[str, Any]) -> dict[str, Any]:
    """The extra keys of a card's `pricing`, as stored on the card."""
    return {key: pricing[key] for key in EXTRA_KEYS if pricing.get(key) not in (None, {}, [])}


def merged_tiers(current: dict[str, Any], table: dict[str, Any]) -> dict[str, Any]:
    """A card's tiers refreshed from a price table: what the table states wins; what it does
    not state (a server tool priced by hand, say) is kept."""
    merged = {**current, **table}
    tools = {**(current.get("server_tools") or {}), **(table.get("server_tools") or {})}
    if tools:
        merged["server_tools"] = tools
    return merged
