"""The one pricing function: token buckets x the resolved card's prices, in exact Decimal.

A card's prices are more than four numbers: a long-context tier prices the whole request
higher once its prompt passes a threshold (Gemini 2.5 Pro above 200k prompt tokens, Claude
Sonnet 4/4.5 with the 1M-context beta above 200k input tokens); a service tier (OpenAI's flex
and priority) has prices of its own, long-context tiers included; server tools the upstream
runs (web search, grounding) cost a fixed amount per call. Prices' first four fields keep
their meaning: the standard tier's prices for prompts below every threshold.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from billing.usage import Usage

_CENT = Decimal("0.01")
# The tiers a response may report that mean "the standard prices" (OpenAI, Anthropic).
STANDARD_TIERS = frozenset({"default", "standard", "auto", "standard_only"})


@dataclass(frozen=True, slots=True)
class Rates:
    """US dollars per million tokens, one price per token bucket."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    cache_write_1h: Decimal

    @property
    def input_side(self) -> Decimal:
        """The highest price a prompt token can cost at these rates."""
        return max(self.input, self.cache_read, self.cache_write, self.cache_write_1h)


@dataclass(frozen=True, slots=True)
class LongContext:
    """Above `above` prompt tokens the whole request is priced at `rates`."""

    above: int
    rates: Rates


@dataclass(frozen=True, slots=True)
class TierPrices:
    """One service tier's prices: its rates below every threshold, and its long-context tiers."""

    rates: Rates
    long_context: tuple[LongContext, ...] = ()  # ascending by `above`


@dataclass(frozen=True, slots=True)
class Prices:
    """US dollars per million tokens (per call for server tools)."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    cache_write_1h: Decimal | None = None  # None: the cache_write price
    long_context: tuple[LongContext, ...] = ()  # ascending by `above`
    # Tuples of pairs rather than dicts, so a Card stays hashable.
    service_tiers: tuple[tuple[str, TierPrices], ...] = ()
    server_tools: tuple[tuple[str, Decimal], ...] = ()

    @property
    def rates(self) -> Rates:
        return Rates(
            self.input,
            self.output,
            self.cache_read,
            self.cache_write,
            self.cache_write if self.cache_write_1h is None else self.cache_write_1h,
        )

    @property
    def standard(self) -> TierPrices:
        return TierPrices(self.rates, self.long_context)

    def tier(self, service_tier: str | None) -> TierPrices | None:
        """The prices of a service tier; None for one this card has no prices for."""
        if service_tier is None or service_tier in STANDARD_TIERS:
            return self.standard
        return next((prices for name, prices in self.service_tiers if name == service_tier), None)

    def server_tool(self, name: str) -> Decimal | None:
        """US dollars per call of a server tool; None when this card does not price it."""
        return next((price for tool, price in self.server_tools if tool == name), None)


def price_text(price: Decimal) -> str:
    """Prices and other dollar amounts as plain decimals with at least cents: "3.00", "0.075",
    "0.30", "-2.50"."""
    normal = price.normalize()
    exponent = normal.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        normal = normal.quantize(_CENT)
    return format(normal, "f")


ONE_MILLION = Decimal(1_000_000)


def _at(table: TierPrices, prompt_tokens: int) -> Rates:
    rates = table.rates
    for tier in table.long_context:
        if prompt_tokens > tier.above:
            rates = tier.rates
    return rates


def rates_for(prices: Prices, prompt_tokens: int, service_tier: str | None) -> Rates:
    """The rates a request is priced at: its service tier's (the standard prices for a tier the
    card does not know, which the gateway refuses to ask for), at its prompt's length."""
    return _at(prices.tier(service_tier) or prices.standard, prompt_tokens)


def usage_cost(usage: Usage, prices: Prices) -> Decimal:
    """US dollars for `usage` at `prices`; exact, never rounded.

    Token prices carry at most 6 decimals, so token costs have at most 12: well under the
    1e-9 USD the ledger keeps. A server tool the card does not price costs nothing here; the
    gateway refuses requests that ask for one.
    """
    rates = rates_for(prices, usage.prompt_tokens, usage.service_tier)
    per_million = (
        usage.uncached_input * rates.input
        + usage.cache_read * rates.cache_read
        + usage.cache_write * rates.cache_write
        + usage.cache_write_1h * rates.cache_write_1h
        + (usage.output + usage.reasoning) * rates.output
    )
    tools = sum(
        (count * (prices.server_tool(name) or 0) for name, count in usage.server_tools.items()),
        Decimal(0),
    )
    return per_million / ONE_MILLION + tools


def highest_prices(
    prices: Prices, prompt_tokens_bound: int, service_tier: str | None = None
) -> tuple[Decimal, Decimal]:
    """(input-side, output) US dollars per million tokens: the highest a request with at most
    `prompt_tokens_bound` prompt tokens can be charged per prompt token and per output token,
    at `service_tier` (None: the standard tier). Every long-context tier the bound reaches
    counts, since the output may not be known when this is asked."""
    ladder = _LADDERS.get((id(prices), service_tier))
    if ladder is None or ladder[0] is not prices:
        ladder = (prices, _ladder(prices, service_tier))
        if len(_LADDERS) >= 1024:
            _LADDERS.clear()
        _LADDERS[(id(prices), service_tier)] = ladder
    steps = ladder[1]
    if len(steps) == 1:  # no long-context tier: most cards
        return steps[0][1], steps[0][2]
    highest_input = highest_output = Decimal(0)
    for above, input_side, output in steps:
        if prompt_tokens_bound > above:
            highest_input = max(highest_input, input_side)
            highest_output = max(highest_output, output)
    return highest_input, highest_output


# (id(prices), tier) -> (prices, ladder): keyed by identity, since a card's Prices lives as long
# as the routing table and hashing it costs more than the lookup saves; the entry holds the
# Prices, so its id is not reused while cached, and `is` checks it.
_LADDERS: dict[tuple[int, str | None], tuple[Prices, tuple[tuple[int, Decimal, Decimal], ...]]] = {}


def _ladder(prices: Prices, service_tier: str | None) -> tuple[tuple[int, Decimal, Decimal], ...]:
    """(threshold, input-side, output) for the tier's rates (threshold -1: every prompt) and
    each of its long-context tiers."""
    table = prices.tier(service_tier) or prices.standard
    return (
        (-1, table.rates.input_side, table.rates.output),
        *((t.above, t.rates.input_side, t.rates.output) for t in table.long_context),
    )


def server_tool_worst_case(prices: Prices, counts: Mapping[str, int]) -> Decimal:
    """US dollars for at most `counts[name]` calls of each server tool. A tool the card does
    not price raises KeyError: such a request must have been refused."""
    total = Decimal(0)
    for name, count in counts.items():
        price = prices.server_tool(name)
        if price is None:
            raise KeyError(name)
        total += count * price
    return total


def cost_text(cost: Decimal) -> str:
    """A cost as a plain decimal number, never in exponent notation: "0.000123"."""
    if cost == 0:
        return "0"
    text = format(cost.normalize(), "f")
    return text


@dataclass(frozen=True, slots=True)
class CostLine:
    """One bucket of a charge: its tokens (or calls) at its price, and what they cost."""

    bucket: str
    count: int
    price: Decimal  # per million tokens; per call for a server tool
    cost: Decimal
    per_call: bool = False


def cost_lines(usage: Usage, prices: Prices) -> list[CostLine]:
    """`usage_cost` bucket by bucket (the lines sum to it exactly), for a request's detail."""
    rates = rates_for(prices, usage.prompt_tokens, usage.service_tier)
    buckets = (
        ("Input (uncached)", usage.uncached_input, rates.input),
        ("Cache read", usage.cache_read, rates.cache_read),
        ("Cache write", usage.cache_write, rates.cache_write),
        ("Cache write (1 hour)", usage.cache_write_1h, rates.cache_write_1h),
        ("Output", usage.output, rates.output),
        ("Reasoning", usage.reasoning, rates.output),
    )
    lines = [
        CostLine(name, count, price, count * price / ONE_MILLION)
        for name, count, price in buckets
        if count
    ]
    for name, count in sorted(usage.server_tools.items()):
        price = prices.server_tool(name) or Decimal(0)
        lines.append(CostLine(name, count, price, count * price, per_call=True))
    return lines
