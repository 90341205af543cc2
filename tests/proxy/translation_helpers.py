"""What the pure-translator tests share: a card without a database, a prompt and SSE events."""

from decimal import Decimal
from typing import Any

import orjson

from billing.pricing import Prices
from proxy.gateway.routing import Card
from proxy.gateway.sse import Event


def card(upstream_id: str, provider: str = "anthropic", *, reasoning: bool = True) -> Card:
    return Card(
        id=1,
        title=upstream_id.title(),
        provider=provider,
        upstream_id=upstream_id,
        type="chat",
        context_length=200000,
        max_output_tokens=32000,
        prices=Prices(Decimal(3), Decimal(15), Decimal("0.3"), Decimal("3.75")),
        supports_tools=True,
        supports_vision=True,
        supports_json=True,
        supports_reasoning=reasoning,
        first_byte_timeout=None,
        credential_ids=frozenset(),
        names=(upstream_id,),
        created=0,
    )


SONNET = card("claude-sonnet-4-5")
HELLO = [{"role": "user", "content": "hi"}]


def events(*items: tuple[str, dict[str, Any]]) -> list[Event]:
    return [Event(name, orjson.dumps(data)) for name, data in items]


# --- usage --------------------------------------------------------------------------------
