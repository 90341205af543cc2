"""The one pricing function: token buckets x the resolved card's prices, in exact Decimal."""

from decimal import Decimal

from billing.usage import Usage
from proxy.gateway.routing import Prices

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
