"""A request's worst case, and the output limit (and server-tool calls) that fit it under a
ceiling.

The worst case is a true upper bound of what the call can be charged:

- Prompt tokens: the request body's size in bytes, plus PROMPT_OVERHEAD_TOKENS. A token is
  at least one byte of the text it encodes (BPE and SentencePiece with byte fallback alike),
  JSON only adds bytes to the text (quotes, escapes, field names), and each message's JSON
  (`{"role":"user","content":""}`, 28 bytes) outweighs the few tokens a chat template adds per
  message; the overhead covers what a provider adds once (tool-use system prompts, Anthropic's
  346 tokens). A body with any non-text part (images, documents, files, audio, video) is
  bounded by the model's context window instead: such parts cost tokens unrelated to their
  bytes (an image URL of 40 bytes may be 1,600 tokens). Either bound is capped by the context
  window, which no prompt can exceed (but with Anthropic's 1M-context beta, whose window the
  card does not show). Actual usage settles the charge; the bound only reserves. A prompt
  the upstream completes from its own storage (a Responses API request's previous response
  or conversation: `stored_context`) is bounded by the context window alone.
- Output tokens: `n` x the output limit (max_completion_tokens / max_tokens, else the card's
  maximum output, else its context window). Reasoning tokens count inside that limit on every
  provider the gateway speaks to.
- Server tools (pipeline/server_tools.py says which a request has, and at most how many calls
  each makes): their calls x their per-call price. Their results (search hits, fetched pages)
  become input tokens the body does not bound, and the upstream samples again after each call,
  re-reading the whole context each time (Anthropic's usage sums every pass's input, cache
  reads included). So with server tools the prompt is bounded by its own bound for the first
  pass plus one context window for each pass after it: `passes - 1` is the number of calls, or
  SERVER_LOOP_PASSES - 1 when a tool runs code between its calls (dynamic filtering), whichever
  is more.
- Prices: the highest input-side price (input or a cache write) for every prompt token, and
  the output price, at the highest long-context tier the prompt's bound reaches and at the
  service tier the client asked for (billing/pricing.py highest_prices).

Over a ceiling, server tools' calls are lowered first (each tool's max_uses, down to 1), then
the output limit (down to OutputLimit.minimum); below both the request is refused.
"""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from billing.pricing import ONE_MILLION, Prices, highest_prices
from proxy.gateway.routing import Card

PROMPT_OVERHEAD_TOKENS = 1024
# The smallest answer worth sending: below it a request is refused rather than cut.
MINIMAL_ANSWER_TOKENS = 16
LONG_CONTEXT_TOKENS = 1_000_000  # Anthropic's context-1m beta
# Anthropic's server-side sampling loop stops after this many passes (stop_reason pause_turn).
SERVER_LOOP_PASSES = 10

_NON_TEXT_PART = re.compile(
    rb'"type"\s*:\s*"(?:image|image_url|input_image|input_audio|audio|file|input_file|document|video)"'
)


@dataclass(slots=True)
class OutputLimit:
    """The request's output limit, as the dialect reads and writes it."""

    requested: int | None  # what the client sent; None: nothing
    choices: int = 1  # `n`
    lower: Callable[[int], None] | None = None  # writes a lower limit into the request body
    minimum: int = MINIMAL_ANSWER_TOKENS  # below this the request is refused (thinking: more)


@dataclass(slots=True)
class ServerTool:
    """A server tool the upstream may run for the request: the catalog's name for its price,
    and at most how many calls it makes."""

    name: str
    uses: int
    # Writes a lower max_uses into the request body; None: the count is fixed by the request.
    lower: Callable[[int], None] | None = None
    loops: bool = False  # runs code between its calls: passes are not bounded by its uses


@dataclass(frozen=True, slots=True)
class Fit:
    output_tokens: int
    uses: int  # the most calls any lowerable server tool may make (0: none)


@dataclass(frozen=True, slots=True)
class WorstCase:
    prompt_tokens: int  # the first pass's bound
    input_price: Decimal  # per million tokens, at the full bound
    output_price: Decimal
    output: OutputLimit | None  # None: no output (embeddings)
    output_tokens: int  # the limit the worst case assumes
    tools: tuple[ServerTool, ...] = ()
    uses: int = 0  # the most calls any lowerable tool makes: the largest max_uses
    window: int = 0  # a later pass's input bound (the context window)
    prices: Prices | None = field(default=None, compare=False)
    service_tier: str | None = None

    def prompt_bound(self, uses: int | None = None) -> int:
        """Every pass's input tokens, summed, with lowerable tools' calls capped at `uses`."""
        if not self.tools:
            return self.prompt_tokens
        return self.prompt_tokens + (_passes(self.tools, uses) - 1) * self.window

    def cost(self, output_tokens: int | None = None, uses: int | None = None) -> Decimal:
        tokens = self.output_tokens if output_tokens is None else output_tokens
        choices = self.output.choices if self.output is not None else 0
        input_price, output_price = self._prices(uses)
        return (
            self.prompt_bound(uses) * input_price + choices * tokens * output_price
        ) / ONE_MILLION + self.tools_cost(uses)

    def tools_cost(self, uses: int | None = None) -> Decimal:
        """US dollars for the server tools' calls, at most `uses` for each lowerable one."""
        if not self.tools or self.prices is None:
            return Decimal(0)
        total = Decimal(0)
        for tool in self.tools:
            price = self.prices.server_tool(tool.name)
            if price is None:  # such a request is refused before any upstream call
                raise KeyError(tool.name)
            total += _calls(tool, uses) * price
        return total

    def fitting(self, ceiling: Decimal, uses: int | None = None) -> int | None:
        """The largest output limit whose worst case (with `uses`) is within `ceiling`, at most
        the current one; None when not even the minimal answer (or, without output, the
        prompt) fits."""
        input_price, output_price = self._prices(uses)
        prompt = self.prompt_bound(uses) * input_price / ONE_MILLION + self.tools_cost(uses)
        if self.output is None:
            return 0 if prompt <= ceiling else None
        per_token = self.output.choices * output_price / ONE_MILLION
        if per_token == 0:
            return self.output_tokens if prompt <= ceiling else None
        fits = int((ceiling - prompt) / per_token) if ceiling >= prompt else -1
        if fits >= self.output_tokens:
            return self.output_tokens
        return fits if fits >= self.output.minimum else None

    def fit(self, ceiling: Decimal) -> Fit | None:
        """What fits within `ceiling`: the whole request, else fewer server-tool calls (the
        most that fit, at least one each), else also a lower output limit; None: nothing."""
        if self.cost() <= ceiling:
            return Fit(self.output_tokens, self.uses)
        if self.uses > 1 and self.cost(uses=1) <= ceiling:
            low, high = 1, self.uses  # cost(low) fits, cost(high) does not
            while high - low > 1:
                middle = (low + high) // 2
                if self.cost(uses=middle) <= ceiling:
                    low = middle
                else:
                    high = middle
            return Fit(self.output_tokens, low)
        uses = min(self.uses, 1)
        limit = self.fitting(ceiling, uses)
        return None if limit is None else Fit(limit, uses)

    def _prices(self, uses: int | None) -> tuple[Decimal, Decimal]:
        if uses is None or uses >= self.uses or self.prices is None:
            return self.input_price, self.output_price
        return highest_prices(self.prices, self.prompt_bound(uses), self.service_tier)


def _calls(tool: ServerTool, uses: int | None) -> int:
    """The tool's calls, with a lowerable one's capped at `uses` (None: as the request says)."""
    if tool.lower is None or uses is None:
        return tool.uses
    return min(tool.uses, uses)


def _passes(tools: Sequence[ServerTool], uses: int | None) -> int:
    passes = 1 + sum(_calls(tool, uses) for tool in tools)
    if any(tool.loops for tool in tools):
        passes = max(passes, SERVER_LOOP_PASSES)
    return passes


def context_window(card: Card, *, long_context: bool) -> int:
    return LONG_CONTEXT_TOKENS if long_context else card.context_length


def prompt_bound(
    raw_size: int, raw: bytes | None, card: Card, *, long_context: bool, stored: bool = False
) -> int:
    window = context_window(card, long_context=long_context)
    if stored or (raw is not None and _NON_TEXT_PART.search(raw)):
        bound = window or raw_size + PROMPT_OVERHEAD_TOKENS
    else:
        bound = raw_size + PROMPT_OVERHEAD_TOKENS
    return min(bound, window) if window else bound


def worst_case(
    card: Card,
    raw: bytes,
    output: OutputLimit | None,
    *,
    long_context: bool = False,
    service_tier: str | None = None,
    tools: Sequence[ServerTool] = (),
    stored_context: bool = False,
) -> WorstCase:
    limit = 0
    if output is not None:
        requested = output.requested
        limit = requested if requested is not None else card.max_output_tokens or 0
        limit = limit or card.context_length
    prompt_tokens = prompt_bound(
        len(raw), raw, card, long_context=long_context, stored=stored_context
    )
    window = uses = 0
    bound = prompt_tokens
    if tools:
        window = context_window(card, long_context=long_context) or LONG_CONTEXT_TOKENS
        uses = max((tool.uses for tool in tools if tool.lower is not None), default=0)
        bound += (_passes(tools, None) - 1) * window
    # Tier-aware: a prompt that may pass a long-context threshold is held at that tier's price.
    input_price, output_price = highest_prices(card.prices, bound, service_tier)
    return WorstCase(
        prompt_tokens=prompt_tokens,
        input_price=input_price,
        output_price=output_price,
        output=output,
        output_tokens=limit,
        tools=tuple(tools),
        uses=uses,
        window=window,
        prices=card.prices,
        service_tier=service_tier,
    )
