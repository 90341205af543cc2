"""What every upstream call shares: timing, the attempt log, and its one usage event."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from billing.events import UsageEvent
from billing.pricing import cost_text, usage_cost
from billing.usage import Usage
from proxy.gateway.routing import Card, Upstream

ZERO = Decimal(0)


@dataclass(slots=True)
class CallRecord:
    """Filled in as a request travels; turned into exactly one UsageEvent at the end."""

    request_id: str
    new_id: Callable[[], str]
    endpoint: str
    card: Card
    key_id: int | None
    account_id: int | None
    stream: bool
    started_at: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    first_byte: float | None = None
    upstream: Upstream | None = None
    attempts: int = 0
    upstream_request_id: str | None = None
    # Sent with the answer, whatever its shape (the key's rate-limit state).
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    def mark_first_byte(self) -> None:
        if self.first_byte is None:
            self.first_byte = time.perf_counter()

    def event(
        self,
        *,
        status: int,
        usage: Usage,
        error_code: str | None = None,
        client_disconnected: bool = False,
    ) -> UsageEvent:
        now = time.perf_counter()
        return UsageEvent(
            event_id=self.new_id(),
            request_id=self.request_id,
            endpoint=self.endpoint,
            key_id=self.key_id,
            account_id=self.account_id,
            card_id=self.card.id,
            model=self.card.title,
            provider=self.card.provider,
            upstream_model=self.card.upstream_id,
            credential_id=self.upstream.id if self.upstream else None,
            status=status,
            error_code=error_code,
            stream=self.stream,
            usage=usage,
            cost=usage_cost(usage, self.card.prices),
            started_at=self.started_at,
            latency_ms=round((now - self.started) * 1000, 3),
            ttfb_ms=None
            if self.first_byte is None
            else round((self.first_byte - self.started) * 1000, 3),
            attempts=self.attempts,
            client_disconnected=client_disconnected,
            upstream_request_id=self.upstream_request_id,
        )


def priced_usage(original: Any, usage: Usage, cost: Decimal) -> dict[str, Any]:
    """The client-facing usage object: the upstream's extras kept, our counts and cost on top."""
    result: dict[str, Any] = dict(original) if isinstance(original, dict) else {}
    for key, value in usage.openai_dict().items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = {**result[key], **value}
        else:
            result[key] = value
    result["cost"] = orjson.Fragment(cost_text(cost).encode())
    return result


__all__ = ["ZERO", "CallRecord", "priced_usage"]
