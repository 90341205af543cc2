"""The one pricing function: token buckets x the resolved card's prices, in exact Decimal."""

from dataclasses import dataclass
from decimal import Decimal

from billing.usage import Usage

_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Prices:
    """US dollars per million tokens."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal


def price_text(price: Decimal) -> str:
    """Prices and other dollar amounts as plain decimals with at least cents: "3.00", "0.075",
    "0.30", "-2.50"."""
    normal = price.normalize()
    exponent = normal.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        normal = normal.quantize(_CENT)
    return format(normal, "f")


ONE_MILLION = Decimal(1_000_000)


def usage_cost(usage: Usage, prices: Prices) -> Decimal:
    """US dollars for `usage` at `prices` (per million tokens); exact, never rounded.

    Prices carry at most 6 decimals, so the cost has at most 12: well under the 1e-9 USD the
    ledger keeps.
    """
    per_million = (
        usage.uncached_input * prices.input
        + usage.cache_read * prices.cache_read
        + usage.cache_write * prices.cache_write
        + (usage.output + usage.reasoning) * prices.output
    )
    return per_million / ONE_MILLION


def cost_text(cost: Decimal) -> str:
    """A cost as a plain decimal number, never in exponent notation: "0.000123"."""
    if cost == 0:
        return "0"
    text = format(cost.normalize(), "f")
    return text
