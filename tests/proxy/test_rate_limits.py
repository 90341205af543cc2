"""Per-key requests and tokens per minute: 429 with Retry-After, OpenAI's rate-limit headers."""

import asyncio
import socket

import httpx
import pytest
import redis.asyncio as aioredis
from django.conf import settings

from accounts.models import User
from billing.usage import Usage
from keys.services import key_mint
from keys.validation import KeySpec
from proxy.gateway.auth.policy import KeyPolicy
from proxy.gateway.errors import RateLimited
from proxy.gateway.limits import LocalBuckets, RateLimiter, duration
from tests.conftest import LiveServer
from tests.fakes.server import FakeServer
from tests.proxy.conftest import EventLog
from tokenbyte.redis import GatewayRedis

HELLO = [{"role": "user", "content": "Say hello"}]  # 5 prompt + 8 completion tokens in the fake


def chat(gateway: LiveServer, secret: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "GPT-4o", "messages": HELLO},
        headers={"authorization": f"Bearer {secret}"},
        timeout=30,
    )


@pytest.mark.slow
def test_requests_per_minute_refuse_with_retry_after_and_charge_nothing(
    gateway: LiveServer, key_owner: User, fake_openai: FakeServer, usage_events: EventLog
) -> None:
    secret = key_mint(owner=key_owner, spec=KeySpec(name="two a minute", rpm=2)).secret
    first, second, third = chat(gateway, secret), chat(gateway, secret), chat(gateway, secret)
    assert (first.status_code, second.status_code, third.status_code) == (200, 200, 429)
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    assert second.headers["x-ratelimit-reset-requests"].endswith("s")
    assert "x-ratelimit-limit-tokens" not in first.headers  # only the limits the key has
    error = third.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert "2 requests per minute" in error["message"]
    assert 1 <= int(third.headers["retry-after"]) <= 60
    assert third.headers["x-ratelimit-remaining-requests"] == "0"
    assert len(fake_openai.app.received) == 2  # the refused request never reached upstream
    usage_events.for_request(second.headers["x-request-id"])
    # Refused after authentication: its one event tells of it, and charges nothing.
    refusal = usage_events.for_request(third.headers["x-request-id"])
    assert (refusal.status, refusal.error_code) == (429, "rate_limit_exceeded")
    assert (refusal.cost, refusal.usage, refusal.attempts) == (0, Usage(), 0)


@pytest.mark.slow
def test_tokens_per_minute_count_what_calls_used(
    gateway: LiveServer, key_owner: User, fake_openai: FakeServer, usage_events: EventLog
) -> None:
    secret = key_mint(owner=key_owner, spec=KeySpec(name="twenty tokens", tpm=20)).secret
    first = chat(gateway, secret)
    assert first.status_code == 200
    assert first.headers["x-ratelimit-remaining-tokens"] == "20"
    usage_events.for_request(first.headers["x-request-id"])  # counted before consumers after it
    second = chat(gateway, secret)
    assert second.status_code == 200
    assert second.headers["x-ratelimit-remaining-tokens"] == "7"  # 20 - 13
    usage_events.for_request(second.headers["x-request-id"])
    third = chat(gateway, secret)
    assert third.status_code == 429
    assert "20 tokens per minute" in third.json()["error"]["message"]
    assert len(fake_openai.app.received) == 2


def policy(key_id: int, rpm: int | None = None, tpm: int | None = None) -> KeyPolicy:
    return KeyPolicy(
        key_id=key_id,
        account_id=1,
        name="k",
        prefix="tb-x",
        rpm=rpm,
        tpm=tpm,
        allowed_models=frozenset(),
        max_request_cost=None,
        budget=None,
        budget_period="never",
        expires_at=None,
        networks=(),
    )


def test_local_buckets_refill_at_the_steady_rate() -> None:
    now = [1000.0]
    buckets = LocalBuckets(clock=lambda: now[0])
    assert [buckets.admit("r", "t", 3, 0).allowed for _ in range(4)] == [True, True, True, False]
    refused = buckets.admit("r", "t", 3, 0)
    assert refused.retry_ms == 20_000  # one request's worth of a 3-a-minute rate
    now[0] += 20.0
    assert buckets.admit("r", "t", 3, 0).allowed
    assert not buckets.admit("r", "t", 3, 0).allowed


def test_reset_durations_read_like_openais() -> None:
    assert [duration(ms) for ms in (20, 1500, 59_999, 360_000)] == ["20ms", "1.5s", "60s", "6m0s"]


@pytest.mark.redis
def test_limits_are_shared_by_every_process_through_redis() -> None:
    async def scenario() -> list[bool]:
        one = RateLimiter(GatewayRedis(settings.REDIS_URL))
        two = RateLimiter(GatewayRedis(settings.REDIS_URL))
        key = policy(987_654_321, rpm=3)
        outcomes = []
        for limiter in (one, two, one, two):
            try:
                await limiter.admit(key)
                outcomes.append(True)
            except RateLimited:
                outcomes.append(False)
        return outcomes

    async def cleanup() -> None:
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        await client.delete("tb:rl:{987654321}:requests", "tb:rl:{987654321}:tokens")
        await client.aclose()

    asyncio.run(cleanup())
    assert asyncio.run(scenario()) == [True, True, True, False]
    asyncio.run(cleanup())


def test_limits_hold_per_process_while_redis_is_unreachable() -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def scenario() -> list[bool]:
        limiter = RateLimiter(GatewayRedis(f"redis://127.0.0.1:{port}/0"))
        outcomes = []
        for _ in range(3):
            try:
                await limiter.admit(policy(42, rpm=2))
                outcomes.append(True)
            except RateLimited:
                outcomes.append(False)
        return outcomes

    assert asyncio.run(scenario()) == [True, True, False]  # enforced, not a 500
