"""A credential cooled down by one gateway process is avoided by the others (through Redis)."""

import asyncio
import time

import pytest
from django.conf import settings

from proxy.gateway.routing import Upstream
from proxy.upstream.pool import UpstreamPool
from tokenbyte.redis import GatewayRedis


def upstream(upstream_id: int, priority: int = 0) -> Upstream:
    return Upstream(
        id=upstream_id,
        provider="openai",
        name=f"u{upstream_id}",
        base_url="http://127.0.0.1:9/v1",
        api_key="k",
        priority=priority,
        weight=1,
    )


@pytest.mark.redis
def test_a_cooldown_reaches_another_process_within_a_second() -> None:
    async def scenario() -> float:
        one = UpstreamPool(GatewayRedis(settings.REDIS_URL))
        two = UpstreamPool(GatewayRedis(settings.REDIS_URL))
        await one.start()
        await two.start()
        try:
            await asyncio.sleep(0.2)  # both subscribed
            primary, backup = upstream(9001, priority=5), upstream(9002)
            assert two.plan((primary, backup)) == [primary, backup]
            started = time.monotonic()
            one.failed(primary, cooldown=5.0)
            while two.plan((primary, backup))[0] is primary:
                if time.monotonic() - started > 1.0:
                    raise AssertionError("the cooldown did not reach the other pool within 1 s")
                await asyncio.sleep(0.01)
            return time.monotonic() - started
        finally:
            await one.stop()
            await two.stop()

    assert asyncio.run(scenario()) < 1.0


def test_without_redis_a_cooldown_stays_in_its_process() -> None:
    pool = UpstreamPool(None)
    primary, backup = upstream(1, priority=5), upstream(2)
    pool.failed(primary, cooldown=5.0)
    assert pool.plan((primary, backup)) == [backup, primary]  # cooling ones last, not dropped
    pool.succeeded(primary)
    assert pool.plan((primary, backup)) == [primary, backup]


def test_a_burst_of_failures_caps_the_cooldown() -> None:
    pool = UpstreamPool(None)
    flaky = upstream(3)
    for _ in range(5000):  # a thousand concurrent requests failing at once, five times over
        pool.failed(flaky, cooldown=5.0)
    assert pool.plan((flaky,)) == [flaky]
