"""A request's worst case, and the output limit that fits it under a ceiling.

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
  card does not show). Actual usage settles the charge; the bound only reserves.
- Output tokens: `n` x the output limit (max_completion_tokens / max_tokens, else the card's
  maximum output, else its context window). Reasoning tokens count inside that limit on every
  provider the gateway speaks to.
- Prices: the highest input-side price (input or a cache write) for every prompt token, and
  the output price, at the highest long-context tier the prompt's bound reaches and at the
  service tier the client asked for (billing/pricing.py highest_prices).
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from billing.pricing import ONE_MILLION, highest_prices
from proxy.gateway.routing import Card

PROMPT_OVERHEAD_TOKENS = 1024
# The smallest answer worth sending: below it a request is refused rather than cut.
MINIMAL_ANSWER_TOKENS = 16
LONG_CONTEXT_TOKENS = 1_000_000  # Anthropic's context-1m beta

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


@dataclass(frozen=True, slots=True)
class WorstCase:
    prompt_tokens: int
    input_price: Decimal  # per million tokens
    output_price: Decimal
    output: OutputLimit | None  # None: no output (embeddings)
    output_tokens: int  # the limit the worst case assumes

    def cost(self, output_tokens: int | None = None) -> Decimal:
        tokens = self.output_tokens if output_tokens is None else output_tokens
        choices = self.output.choices if self.output is not None else 0
        return (
            self.prompt_tokens * self.input_price + choices * tokens * self.output_price
        ) / ONE_MILLION

    def fitting(self, ceiling: Decimal) -> int | None:
        """The largest output limit whose worst case is within `ceiling`, at most the current
        one; None when not even the minimal answer (or, without output, the prompt) fits."""
        prompt = self.prompt_tokens * self.input_price / ONE_MILLION
        if self.output is None:
            return 0 if prompt <= ceiling else None
        per_token = self.output.choices * self.output_price / ONE_MILLION
        if per_token == 0:
            return self.output_tokens if prompt <= ceiling else None
        fits = int((ceiling - prompt) / per_token) if ceiling >= prompt else -1
        if fits >= self.output_tokens:
            return self.output_tokens
        return fits if fits >= self.output.minimum else None


def prompt_bound(raw_size: int, raw: bytes | None, card: Card, *, long_context: bool) -> int:
    window = LONG_CONTEXT_TOKENS if long_context else card.context_length
    if raw is not None and _NON_TEXT_PART.search(raw):
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
) -> WorstCase:
    limit = 0
    if output is not None:
        requested = output.requested
        limit = requested if requested is not None else card.max_output_tokens or 0
        limit = limit or card.context_length
    prompt_tokens = prompt_bound(len(raw), raw, card, long_context=long_context)
    # Tier-aware: a prompt that may pass a long-context threshold is held at that tier's price.
    input_price, output_price = highest_prices(card.prices, prompt_tokens, service_tier)
    return WorstCase(
        prompt_tokens=prompt_tokens,
        input_price=input_price,
        output_price=output_price,
        output=output,
        output_tokens=limit,
    )
