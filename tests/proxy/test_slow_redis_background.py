"""The background users of Redis on a stalled Redis: subscriptions and the usage stream.

A subscription must wait quietly for as long as nothing is announced, yet notice a Redis that
stopped answering; metering must keep feeding its in-process consumers (the rate limiter's
token counts) and stop in bounded time, shipping to Redis once it answers again.
"""

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
import redis.asyncio as aioredis
from django.conf import settings

from billing.events import UsageEvent, events_from_stream
from billing.usage import Usage
from proxy.gateway.pipeline import metering
from proxy.gateway.pipeline.metering import Metering
from tests.redis_faults import LISTENER, StallingRedis
from tokenbyte import redis as tokenbyte_redis
from tokenbyte.redis import USAGE_STREAM, GatewayRedis, subscribe_forever

WAIT = 10.0  # seconds: generous, the machine is shared


async def until(predicate: Callable[[], bool | Awaitable[bool]]) -> None:
    """Poll `predicate` for up to WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while True:
        outcome = predicate()
        if outcome if isinstance(outcome, bool) else await outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT} s")
        await asyncio.sleep(0.02)


@pytest.fixture
def quick_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pings, handshake timeouts and retries in tenths of seconds rather than seconds."""
    monkeypatch.setattr(tokenbyte_redis, "LISTENER_PING_SECONDS", 0.2)
    monkeypatch.setattr(tokenbyte_redis, "BACKGROUND_TIMEOUT", 0.5)
    monkeypatch.setattr(metering, "RETRY_DELAYS", (0.1,))
    monkeypatch.setattr(metering, "STOP_SHIP_SECONDS", 0.5)


@pytest.mark.redis
@pytest.mark.usefixtures("quick_redis")
def test_a_subscription_stays_up_while_quiet_notices_a_stall_and_subscribes_again() -> None:
    channel = f"tb:test:{secrets.token_hex(4)}"
    received: list[dict[str, Any]] = []

    def data() -> list[bytes]:
        return [m["data"] for m in received if m["type"] == "message"]

    def confirmations() -> int:
        return sum(m["type"] == "subscribe" for m in received)

    async def scenario(stand_in: StallingRedis) -> None:
        real = aioredis.Redis.from_url(settings.REDIS_URL)
        async with GatewayRedis(stand_in.url) as gateway_redis:
            listener = asyncio.create_task(
                subscribe_forever(gateway_redis.listener, channel, received.append, name="test")
            )
            try:
                await until(lambda: confirmations() == 1)
                await asyncio.sleep(1.0)  # quiet: five pings, ten hot-path timeouts long
                await real.publish(channel, b"one")
                await until(lambda: data() == [b"one"])
                assert stand_in.connections(LISTENER) == 1  # it never had to reconnect

                stand_in.stall()
                await real.publish(channel, b"lost")  # a hung Redis delivers nothing
                # The unanswered PING gives it away: it connects again (to the stalled one).
                await until(lambda: stand_in.connections(LISTENER) >= 2)

                stand_in.heal()
                await until(lambda: confirmations() == 2)  # told: announcements may be lost
                await real.publish(channel, b"two")
                await until(lambda: data() == [b"one", b"two"])
            finally:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)
                await real.aclose()

    with StallingRedis(relay=True) as stand_in:
        asyncio.run(scenario(stand_in))


def usage_event() -> UsageEvent:
    return UsageEvent(
        event_id=secrets.token_hex(8),
        request_id="req-test",
        endpoint="chat.completions",
        key_id=None,
        account_id=None,
        card_id=1,
        model="GPT-4o",
        provider="openai",
        upstream_model="gpt-4o",
        credential_id=None,
        status=200,
        error_code=None,
        stream=False,
        usage=Usage(uncached_input=5, output=8),
        cost=Decimal("0.0001"),
        started_at=time.time(),
        latency_ms=1.0,
        ttfb_ms=None,
        attempts=1,
    )


@pytest.mark.usefixtures("quick_redis")
def test_on_a_stalled_redis_consumers_get_events_at_once_and_stopping_is_bounded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[UsageEvent] = []

    async def scenario(stalled: StallingRedis) -> None:
        async with GatewayRedis(stalled.url) as gateway_redis:
            meter = Metering(gateway_redis)
            meter.add_consumer(seen.extend)
            meter.start()
            events = [usage_event() for _ in range(3)]
            for event in events:
                meter.emit(event)
            await until(lambda: seen == events)  # not after Redis (which never answers)
            async with asyncio.timeout(WAIT):
                await meter.stop()

    caplog.set_level(logging.ERROR, logger="proxy.gateway.pipeline.metering")
    with StallingRedis() as stalled:
        asyncio.run(scenario(stalled))
    assert len(seen) == 3
    assert any("3 usage events could not reach Redis" in r.getMessage() for r in caplog.records)


@pytest.mark.redis
@pytest.mark.usefixtures("quick_redis")
def test_usage_events_reach_the_stream_once_when_redis_answers_again() -> None:
    seen: list[UsageEvent] = []

    async def streamed(real: aioredis.Redis) -> list[str]:
        entries = await real.xrevrange(USAGE_STREAM, count=200)
        return [events_from_stream([entry])[0].event_id for entry in entries]

    async def scenario(stand_in: StallingRedis) -> tuple[list[UsageEvent], list[str]]:
        real = aioredis.Redis.from_url(settings.REDIS_URL)
        async with GatewayRedis(stand_in.url) as gateway_redis:
            meter = Metering(gateway_redis)
            meter.add_consumer(seen.extend)
            meter.start()
            try:
                events = [usage_event() for _ in range(3)]
                meter.emit(events[0])

                async def first_shipped() -> bool:
                    return events[0].event_id in await streamed(real)

                await until(first_shipped)
                stand_in.stall()
                meter.emit(events[1])
                meter.emit(events[2])
                await until(lambda: len(seen) == 3)  # consumers don't wait for Redis
                await asyncio.sleep(0.6)  # a shipment timed out meanwhile
                stand_in.heal()

                async def all_shipped() -> bool:
                    ids = await streamed(real)
                    return all(event.event_id in ids for event in events)

                await until(all_shipped)
                return events, await streamed(real)
            finally:
                await meter.stop()
                await real.aclose()

    with StallingRedis(relay=True) as stand_in:
        events, ids = asyncio.run(scenario(stand_in))
    assert seen == events  # each once
    assert [ids.count(event.event_id) for event in events] == [1, 1, 1]
