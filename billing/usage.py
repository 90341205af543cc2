"""Token usage in fixed, disjoint buckets, whatever the provider reported.

Every provider adapter turns its own counts into a Usage; pricing and the client-facing usage
object are computed from these buckets only, so cache tokens are never double-counted or
subtracted twice (OpenAI counts cached tokens inside prompt_tokens, Anthropic does not).
"""

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Usage:
    uncached_input: int = 0
    cache_read: int = 0
    cache_write: int = 0  # at the cache-write price (Anthropic: the 5-minute TTL)
    output: int = 0  # visible output, reasoning excluded
    reasoning: int = 0
    estimated: bool = False  # counted by us (e.g. the client left mid-stream), not reported
    cache_write_1h: int = 0  # Anthropic's 1-hour cache writes, at their own price
    # The service tier the upstream says it used ("default", "flex", "priority", "standard"...);
    # None when it said none.
    service_tier: str | None = None
    # Server-side tool calls the upstream ran and bills per call, by the catalog's tool name
    # ("web_search", "web_fetch", "google_search", "grounded_prompt").
    server_tools: dict[str, int] = field(default_factory=dict)

    @property
    def prompt_tokens(self) -> int:
        return self.uncached_input + self.cache_read + self.cache_write + self.cache_write_1h

    @property
    def completion_tokens(self) -> int:
        return self.output + self.reasoning

    def openai_dict(self) -> dict[str, Any]:
        """OpenAI's usage convention: prompt includes cache, completion includes reasoning."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {
                "cached_tokens": self.cache_read,
                "cache_write_tokens": self.cache_write + self.cache_write_1h,
            },
            "completion_tokens_details": {"reasoning_tokens": self.reasoning},
        }


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_from_openai(raw: Any) -> Usage | None:
    """OpenAI's (and OpenAI-compatible servers') usage object."""
    if not isinstance(raw, dict):
        return None
    prompt = _count(raw.get("prompt_tokens"))
    completion = _count(raw.get("completion_tokens"))
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    cached = min(_count(prompt_details.get("cached_tokens")), prompt)
    cache_write = min(_count(prompt_details.get("cache_write_tokens")), prompt - cached)
    reasoning = min(_count(completion_details.get("reasoning_tokens")), completion)
    return Usage(
        uncached_input=prompt - cached - cache_write,
        cache_read=cached,
        cache_write=cache_write,
        output=completion - reasoning,
        reasoning=reasoning,
    )


def estimate_tokens(text_chars: int, pieces: int = 0) -> int:
    """A rough token count (about 4 characters a token) for when an upstream reported none."""
    return max(pieces, math.ceil(text_chars / 4))


def prompt_chars(messages: Any) -> int:
    total = 0
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    total += len(part["text"])
    return total
