"""Key-cache misses: their own bounded threads, and a flood of unknown keys limited per address.

Run like tests/keys/test_auth.py (async_to_sync from the test's thread); queries are counted in
every thread, since the lookups run on threads of their own.
"""

import asyncio
import ipaddress
import threading
import time
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import httpx
import pytest
from asgiref.sync import async_to_sync
from prometheus_client import REGISTRY

from accounts.models import User
from keys import cache as keys_cache
from proxy.gateway.auth.authenticate import authenticate
from proxy.gateway.auth.policy import KeyPolicy
from proxy.gateway.db import run_in_db_thread
from proxy.gateway.errors import AuthenticationFailed, GatewayError, RateLimited, ServiceUnavailable
from proxy.gateway.limits import UnknownKeyLimiter
from tests.conftest import LiveServer
from tests.keys.conftest import (
    Mint,
    bearer,
    gateway_request,
    made_up_key,
    runtime_with_resolver,
)
from tests.queries import assert_num_queries_anywhere
from tests.redis_faults import HOT, StallingRedis
from tokenbyte.redis import GatewayRedis

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 10.0  # seconds: generous, the machine is shared


def refusals(reason: str) -> float:
    return REGISTRY.get_sample_value("tokenbyte_key_lookups_refused_total", {"reason": reason}) or 0


def from_address(address: str, secret: str) -> Any:
    return gateway_request(bearer(secret), client=(address, 40000))


class BlockedLookups:
    """key_cache_lookup held until released, so lookups pile up on the lane's threads."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()
        real = keys_cache.key_cache_lookup

        def held(secret_hash: str) -> dict[str, Any]:
            self.entered.release()
            self.release.wait(WAIT)
            return real(secret_hash)

        # Read when a runtime's stores are filled (tokenbyte/gateway_stores.py).
        monkeypatch.setattr(keys_cache, "key_cache_lookup", held)


@pytest.fixture
def blocked_lookups(monkeypatch: pytest.MonkeyPatch) -> Iterator[BlockedLookups]:
    blocked = BlockedLookups(monkeypatch)
    yield blocked
    blocked.release.set()


# --- the lane -------------------------------------------------------------------------------


def test_past_the_backlog_an_uncached_key_gets_503_at_once_never_401(
    settings: Any, blocked_lookups: BlockedLookups
) -> None:
    settings.TOKENBYTE_KEY_LOOKUP_THREADS = 1
    settings.TOKENBYTE_KEY_LOOKUP_BACKLOG = 1
    runtime = runtime_with_resolver()
    busy = refusals("busy")

    async def scenario() -> tuple[GatewayError, tuple[Any, ...]]:
        running = asyncio.ensure_future(
            authenticate(gateway_request(bearer(made_up_key())), runtime.keys)
        )
        await asyncio.to_thread(blocked_lookups.entered.acquire, timeout=WAIT)  # on the thread
        waiting = asyncio.ensure_future(
            authenticate(gateway_request(bearer(made_up_key())), runtime.keys)
        )
        await asyncio.sleep(0.05)  # in the backlog
        with pytest.raises(ServiceUnavailable) as caught:
            await authenticate(gateway_request(bearer(made_up_key())), runtime.keys)
        blocked_lookups.release.set()
        done = await asyncio.wait_for(
            asyncio.gather(running, waiting, return_exceptions=True), WAIT
        )
        return caught.value, done

    refused, earlier = async_to_sync(scenario)()
    assert refused.status == HTTPStatus.SERVICE_UNAVAILABLE
    assert "busy checking other keys" in refused.message
    assert (b"retry-after", b"1") in refused.headers
    assert refusals("busy") == busy + 1
    assert [type(outcome) for outcome in earlier] == [AuthenticationFailed] * 2  # then answered


def test_key_lookups_do_not_wait_behind_other_database_work(owner: User, mint: Mint) -> None:
    minted = mint(owner)
    runtime = runtime_with_resolver()
    release = threading.Event()

    def routing_reload_that_hangs() -> None:  # e.g. a slow catalog query on the shared thread
        release.wait(WAIT)

    async def scenario() -> KeyPolicy:
        other_work = asyncio.ensure_future(run_in_db_thread(routing_reload_that_hangs))
        await asyncio.sleep(0.05)
        try:
            return await asyncio.wait_for(
                authenticate(gateway_request(bearer(minted.secret)), runtime.keys), WAIT
            )
        finally:
            release.set()
            await other_work

    assert async_to_sync(scenario)().key_id == minted.key.pk


@pytest.mark.postgres
def test_stopping_the_resolver_closes_its_threads_connections(
    owner: User, mint: Mint, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import connection

    def backends() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            )
            return int(cursor.fetchone()[0])

    # Persistent connections: without an explicit close they would outlive the resolver.
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 600)
    keys = [mint(owner, name=f"key {n}").secret for n in range(3)]
    before = backends()
    runtime = runtime_with_resolver()

    async def lookups_then_stop() -> int:
        await asyncio.gather(
            *(authenticate(gateway_request(bearer(k)), runtime.keys) for k in keys)
        )
        during = await run_in_db_thread(backends)
        await runtime.keys.start()
        await runtime.keys.stop()
        return during

    during = async_to_sync(lookups_then_stop)()
    assert during > before  # the lane's threads kept theirs
    for _ in range(100):  # a server process may take a moment to see its client go
        if backends() == before:
            break
        time.sleep(0.05)
    assert backends() == before, (before, during)


# --- a flood of unknown keys ----------------------------------------------------------------


def test_the_unknown_key_limiter_counts_per_address_and_refills() -> None:
    now = [0.0]
    limiter = UnknownKeyLimiter(3, clock=lambda: now[0])
    one, two = ipaddress.ip_address("192.0.2.1"), ipaddress.ip_address("192.0.2.2")
    for _ in range(3):
        assert limiter.retry_after(one) is None
        limiter.charge(one)
    assert limiter.retry_after(one) == 20  # one key's worth of a 3-a-minute rate
    assert limiter.retry_after(two) is None  # another address is not affected
    for _ in range(50):  # concurrent lookups charged after the fact don't lengthen the wait
        limiter.charge(one)
    assert limiter.retry_after(one) == 20
    now[0] += 20.0
    assert limiter.retry_after(one) is None
    limiter.charge(one)
    assert limiter.retry_after(one) == 20


def test_ipv6_clients_count_per_64_and_the_table_is_capped() -> None:
    limiter = UnknownKeyLimiter(1, max_clients=100, clock=lambda: 0.0)
    limiter.charge(ipaddress.ip_address("2001:db8:1:2::1"))
    assert limiter.retry_after(ipaddress.ip_address("2001:db8:1:2:ffff::9")) is not None
    assert limiter.retry_after(ipaddress.ip_address("2001:db8:1:3::1")) is None
    for n in range(10_000):  # an attacker with many addresses
        limiter.charge(ipaddress.ip_address(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}"))
    assert len(limiter._tat) <= 100


@pytest.mark.parametrize(
    "with_redis", [pytest.param(False, id="embedded"), pytest.param(True, marks=pytest.mark.redis)]
)
def test_past_the_limit_unknown_keys_get_429_without_touching_redis_or_the_database(
    owner: User, mint: Mint, settings: Any, with_redis: bool
) -> None:
    settings.TOKENBYTE_UNKNOWN_KEYS_PER_MINUTE = 3
    known = mint(owner)
    flood = "198.51.100.7"
    limited = refusals("unknown_keys")

    async def scenario(stand_in: StallingRedis | None) -> dict[str, Any]:
        gateway_redis = GatewayRedis(stand_in.url) if stand_in else None
        try:
            runtime = runtime_with_resolver(gateway_redis)
            await authenticate(from_address(flood, known.secret), runtime.keys)  # cached now
            outcomes: dict[str, Any] = {}
            with assert_num_queries_anywhere(3):
                for _ in range(3):
                    with pytest.raises(AuthenticationFailed):
                        await authenticate(from_address(flood, made_up_key()), runtime.keys)
                sent = stand_in.bytes_from(HOT) if stand_in else 0
                with pytest.raises(RateLimited) as caught:
                    await authenticate(from_address(flood, made_up_key()), runtime.keys)
                outcomes["refused"] = caught.value
                outcomes["redis_untouched"] = (stand_in.bytes_from(HOT) if stand_in else 0) == sent
                outcomes["known"] = await authenticate(
                    from_address(flood, known.secret), runtime.keys
                )
            with assert_num_queries_anywhere(1), pytest.raises(AuthenticationFailed):
                await authenticate(from_address("198.51.100.8", made_up_key()), runtime.keys)
            return outcomes
        finally:
            if gateway_redis is not None:
                await gateway_redis.aclose()

    if with_redis:
        with StallingRedis(relay=True) as stand_in:
            outcomes = async_to_sync(scenario)(stand_in)
    else:
        outcomes = async_to_sync(scenario)(None)
    refused = outcomes["refused"]
    assert refused.status == HTTPStatus.TOO_MANY_REQUESTS
    assert "unknown API keys" in refused.message
    assert (b"retry-after", b"20") in refused.headers
    assert outcomes["redis_untouched"]
    assert outcomes["known"].key_id == known.key.pk  # cached keys from that address still work
    assert refusals("unknown_keys") == limited + 1


@pytest.mark.slow
def test_the_gateway_answers_an_unknown_key_flood_with_429_in_openais_shape(
    owner: User, mint: Mint, settings: Any
) -> None:
    settings.TOKENBYTE_UNKNOWN_KEYS_PER_MINUTE = 2
    known = mint(owner)
    with LiveServer() as server, httpx.Client(base_url=server.url, timeout=30) as api:

        def models(secret: str) -> httpx.Response:
            return api.get("/v1/models", headers={"authorization": f"Bearer {secret}"})

        assert models(known.secret).status_code == HTTPStatus.OK  # cached from here on
        statuses = [models(made_up_key()).status_code for _ in range(2)]
        flooded = models(made_up_key())
        assert models(known.secret).status_code == HTTPStatus.OK
    assert statuses == [HTTPStatus.UNAUTHORIZED] * 2
    assert flooded.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert 1 <= int(flooded.headers["retry-after"]) <= 30
    error = flooded.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
