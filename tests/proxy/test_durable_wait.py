"""An answer's last bytes wait for its usage event to be durable, but never for long: not at all
while Redis is known to be away, and at most DURABLE_WAIT_SECONDS otherwise (pure asyncio: no
Redis is reached here)."""

import asyncio
import time
from decimal import Decimal

import pytest

from billing.events import UsageEvent
from billing.usage import Usage
from proxy.gateway.pipeline import metering
from proxy.gateway.pipeline.metering import Metering
from tokenbyte.redis import BreakerState, GatewayRedis


def event(event_id: str) -> UsageEvent:
    return UsageEvent(
        event_id=event_id,
        request_id="req_" + event_id,
        endpoint="chat.completions",
        key_id=1,
        account_id=1,
        card_id=1,
        model="GPT-4o",
        provider="openai",
        upstream_model="gpt-4o",
        credential_id=1,
        status=200,
        error_code=None,
        stream=False,
        usage=Usage(10, 0, 0, 5, 0),
        cost=Decimal("0.0001"),
        started_at=time.time(),
        latency_ms=1.0,
        ttfb_ms=1.0,
        attempts=1,
    )


def test_while_the_breaker_is_open_answers_do_not_wait() -> None:
    async def run() -> None:
        redis = GatewayRedis("redis://127.0.0.1:9/0")  # nothing listens; nothing connects
        redis.breaker.state = BreakerState.OPEN
        assert Metering(redis).emit(event("a")) is None
        await redis.aclose()

    asyncio.run(run())


def test_an_event_that_cannot_ship_frees_its_answer_after_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metering, "DURABLE_WAIT_SECONDS", 0.2)

    async def run() -> None:
        redis = GatewayRedis("redis://127.0.0.1:9/0")
        meter = Metering(redis)
        meter._expirer = asyncio.create_task(meter._expire_forever())
        durable = meter.emit(event("b"))
        assert durable is not None
        started = time.monotonic()
        assert await durable is False  # not durable: the answer goes anyway
        assert time.monotonic() - started < 1.0
        meter._expirer.cancel()
        await redis.aclose()

    asyncio.run(run())
