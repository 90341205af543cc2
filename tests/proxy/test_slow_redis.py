"""A Redis that accepts connections and never answers: the breaker, and requests on the fallback.

The live tests point the gateway's REDIS_URL at tests/redis_faults.py's StallingRedis and drive
real requests through it; the metrics are read from prometheus_client's registry (deltas: it is
process-wide).
"""

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis
from django.conf import settings as django_settings
from prometheus_client import REGISTRY

from accounts.models import User
from keys.services import key_mint
from keys.validation import KeySpec
from proxy.gateway.pipeline import metering
from proxy.models import UpstreamCredential
from tests.conftest import LiveServer
from tests.redis_faults import HOT, StallingRedis
from tokenbyte.redis import Breaker, BreakerState, GatewayRedis, RedisUnavailable

HELLO = [{"role": "user", "content": "Say hello"}]


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def fallbacks(operation: str) -> float:
    return metric("tokenbyte_redis_fallbacks_total", operation=operation)


def chat(server: LiveServer, secret: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "GPT-4o", "messages": HELLO},
        headers={"authorization": f"Bearer {secret}"},
        timeout=30,
    )


@pytest.fixture
def breaker_log() -> Iterator[list[str]]:
    """The breaker's log lines. (caplog's handler sits on the root logger, which the live
    server's Django set-up reconfigures.)"""
    lines: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("tokenbyte.redis.breaker")
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.02)


# --- the breaker's states, on a clock of our own --------------------------------------------


def test_the_breaker_opens_after_consecutive_failures_and_one_probe_decides(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    breaker = Breaker(cool_off=5.0, failures=3, clock=lambda: now[0])
    openings = metric("tokenbyte_redis_breaker_openings_total")
    caplog.set_level(logging.INFO, logger="tokenbyte.redis")

    for _ in range(2):
        assert breaker.allow()
        breaker.failed(TimeoutError())
    breaker.succeeded()  # an answer: the count starts again
    for _ in range(2):
        breaker.failed(TimeoutError())
    assert breaker.state is BreakerState.CLOSED
    breaker.failed(TimeoutError())
    assert breaker.state is BreakerState.OPEN
    assert metric("tokenbyte_redis_breaker_state") == BreakerState.OPEN
    assert not breaker.allow()  # skipped at once while cooling off

    now[0] += 5.0
    assert breaker.allow()  # the probe
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow()  # only one probe at a time
    breaker.failed(TimeoutError())  # still down: open again, no second "opened"
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()

    now[0] += 5.0
    assert breaker.allow()
    breaker.abandoned()  # the probe's request was cancelled: the next call probes
    assert breaker.allow()
    breaker.succeeded()
    assert breaker.state is BreakerState.CLOSED
    assert metric("tokenbyte_redis_breaker_state") == BreakerState.CLOSED
    assert breaker.allow()

    assert metric("tokenbyte_redis_breaker_openings_total") == openings + 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2  # once on opening, once on closing, nothing per call
    assert "3 calls in a row" in warnings[0]
    assert "answers again" in warnings[1]


def test_a_stalled_redis_times_out_then_is_skipped_without_being_contacted() -> None:
    async def outcome(gateway_redis: GatewayRedis) -> str:
        try:
            await gateway_redis.call("key_lookup", lambda client: client.get("k"))
        except RedisUnavailable as exc:
            return type(exc.__cause__).__name__ if exc.__cause__ else "skipped"
        return "answered"

    async def scenario(stalled: StallingRedis) -> list[str]:
        async with GatewayRedis(stalled.url, timeout=0.1, cool_off=600) as gateway_redis:
            outcomes = [await outcome(gateway_redis) for _ in range(3)]
            await asyncio.sleep(0.2)  # anything still on its way arrives
            contacts = stalled.bytes_from(HOT)
            outcomes.append(await outcome(gateway_redis))
            await asyncio.sleep(0.2)
            assert stalled.bytes_from(HOT) == contacts  # the fourth never left
            return outcomes

    timeouts = metric("tokenbyte_redis_timeouts_total", operation="key_lookup")
    skipped = fallbacks("key_lookup")
    with StallingRedis() as stalled:
        outcomes = asyncio.run(scenario(stalled))
        assert stalled.connections(HOT) == 3  # each timed-out connection was dropped
    # asyncio.timeout's TimeoutError: an OSError, not a RedisError (REDIS_FAILURES has both).
    assert outcomes == ["TimeoutError"] * 3 + ["skipped"]
    assert metric("tokenbyte_redis_timeouts_total", operation="key_lookup") == timeouts + 3
    assert fallbacks("key_lookup") == skipped + 4


@pytest.mark.redis
def test_an_error_answer_is_not_an_outage() -> None:
    async def scenario() -> BreakerState:
        async with GatewayRedis(django_settings.REDIS_URL, cool_off=600) as gateway_redis:
            for _ in range(5):
                with pytest.raises(RedisUnavailable) as caught:
                    await gateway_redis.call(
                        "rate_limit", lambda client: client.execute_command("NO-SUCH-COMMAND")
                    )
                assert isinstance(caught.value.__cause__, redis.ResponseError)
            return gateway_redis.breaker.state

    assert asyncio.run(scenario()) is BreakerState.CLOSED


# --- a live gateway on a stalled Redis ------------------------------------------------------


@pytest.fixture
def quick_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    # Stopping gives Redis a last chance for the usage events: not 5 s in a test.
    monkeypatch.setattr(metering, "STOP_SHIP_SECONDS", 0.5)


@pytest.mark.slow
@pytest.mark.usefixtures("quick_stop")
def test_on_a_stalled_redis_requests_are_served_on_the_fallbacks_and_redis_is_skipped(
    openai_upstream: UpstreamCredential,
    key_owner: User,
    settings: Any,
    breaker_log: list[str],
) -> None:
    # Minted before Redis stalls (a key's announcement would wait for it too).
    limited = key_mint(owner=key_owner, spec=KeySpec(name="limited", rpm=1000)).secret
    unseen = key_mint(owner=key_owner, spec=KeySpec(name="unseen", rpm=1000)).secret
    before = {op: fallbacks(op) for op in ("key_lookup", "rate_limit")}
    openings = metric("tokenbyte_redis_breaker_openings_total")
    timeouts = sum(
        metric("tokenbyte_redis_timeouts_total", operation=op)
        for op in ("key_lookup", "key_fill", "rate_limit")
    )
    with StallingRedis() as stalled:
        settings.REDIS_URL = stalled.url
        settings.TOKENBYTE_REDIS_BREAKER_SECONDS = 600  # no probe during this test
        with LiveServer() as server:
            first = chat(server, limited)  # key lookup, key fill, rate limit: 3 timeouts
            assert first.status_code == 200, first.text
            assert first.headers["x-ratelimit-limit-requests"] == "1000"  # counted locally
            assert metric("tokenbyte_redis_breaker_state") == BreakerState.OPEN
            assert metric("tokenbyte_redis_breaker_openings_total") == openings + 1
            after_timeouts = sum(
                metric("tokenbyte_redis_timeouts_total", operation=op)
                for op in ("key_lookup", "key_fill", "rate_limit")
            )
            assert after_timeouts == timeouts + 3
            contacts = stalled.bytes_from(HOT)
            assert contacts > 0

            # Open: nothing more reaches Redis, and nothing waits for it.
            statuses = [chat(server, limited).status_code for _ in range(5)]
            statuses.append(chat(server, unseen).status_code)  # from the database
            statuses.append(chat(server, "tb-" + "m" * 43).status_code)  # unknown: 401
            assert statuses == [200] * 6 + [401]
            time.sleep(0.2)  # anything still on its way arrives
            assert stalled.bytes_from(HOT) == contacts
            assert fallbacks("rate_limit") >= before["rate_limit"] + 7
            assert fallbacks("key_lookup") >= before["key_lookup"] + 3
            ready = httpx.get(f"{server.url}/readyz", timeout=10).json()
            assert ready["redis_breaker"] == "open"

    # One warning for the whole outage, none per request.
    assert [line for line in breaker_log if "calls in a row" in line] == breaker_log
    assert len(breaker_log) == 1


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.usefixtures("quick_stop")
def test_the_breaker_closes_when_redis_answers_again_and_limits_are_shared_again(
    openai_upstream: UpstreamCredential,
    key_owner: User,
    settings: Any,
    breaker_log: list[str],
) -> None:
    minted = key_mint(owner=key_owner, spec=KeySpec(name="limited", rpm=1000))
    bucket = f"tb:rl:{{{minted.key.pk}}}:requests"
    real = redis.Redis.from_url(django_settings.REDIS_URL)
    with StallingRedis(relay=True) as stand_in:
        settings.REDIS_URL = stand_in.url
        settings.TOKENBYTE_REDIS_BREAKER_SECONDS = 0.3
        with LiveServer() as server:
            assert chat(server, minted.secret).status_code == 200
            assert real.exists(bucket)  # counted in Redis
            real.delete(bucket)

            stand_in.stall()
            for _ in range(3):  # three timeouts open it
                assert chat(server, minted.secret).status_code == 200
            assert metric("tokenbyte_redis_breaker_state") == BreakerState.OPEN
            assert not real.exists(bucket)  # counted in this process meanwhile

            stand_in.heal()

            def closed_again() -> bool:
                assert chat(server, minted.secret).status_code == 200
                return metric("tokenbyte_redis_breaker_state") == BreakerState.CLOSED

            wait_until(closed_again)
            assert chat(server, minted.secret).status_code == 200
            assert real.exists(bucket)  # shared through Redis again
    real.close()
    assert len(breaker_log) == 2, breaker_log
    assert "calls in a row" in breaker_log[0]
    assert "answers again" in breaker_log[1]
