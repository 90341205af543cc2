"""The gateway's key cache: one query per miss, races, Redis, invalidation, refreshes, outages.

Run like tests/keys/test_auth.py: through async_to_sync, so query counts are real.
"""

import asyncio
import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async

from accounts.models import User
from keys.models import ApiKey
from keys.services import key_revoke
from proxy.gateway.auth import key_cache
from proxy.gateway.auth.authenticate import authenticate
from proxy.gateway.auth.policy import KeyPolicy
from proxy.gateway.errors import AuthenticationFailed, ServiceUnavailable
from tests.keys.conftest import (
    Mint,
    authenticate_sync,
    bearer,
    gateway_request,
    made_up_key,
    runtime_with_resolver,
)
from tests.queries import assert_num_queries_anywhere
from tokenbyte.redis import GatewayRedis

pytestmark = pytest.mark.django_db(transaction=True)


async def _wait_for(predicate: Any) -> None:
    """Poll `predicate` every 10 ms for up to 2 s."""
    for _ in range(200):
        if await predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


def test_concurrent_misses_for_one_key_share_one_query(owner: User, mint: Mint) -> None:
    minted = mint(owner)
    runtime = runtime_with_resolver()

    async def many() -> list[KeyPolicy]:
        request = gateway_request(bearer(minted.secret))
        return await asyncio.gather(*(authenticate(request, runtime.keys) for _ in range(20)))

    with assert_num_queries_anywhere(1):
        policies = async_to_sync(many)()
    assert {policy.key_id for policy in policies} == {minted.key.pk}


def test_a_miss_that_raced_a_change_is_not_kept(
    owner: User, mint: Mint, monkeypatch: pytest.MonkeyPatch
) -> None:
    minted = mint(owner)
    digest = hashlib.sha256(minted.secret.encode()).hexdigest()
    runtime = runtime_with_resolver()
    resolver = runtime.keys
    assert resolver is not None
    real_lookup = resolver.store.lookup

    def lookup_while_the_key_changes(secret_hash: str) -> dict[str, Any]:
        entry = real_lookup(secret_hash)
        resolver.invalidate([secret_hash])  # the announcement lands while the miss is out
        return entry

    monkeypatch.setattr(
        resolver, "store", dataclasses.replace(resolver.store, lookup=lookup_while_the_key_changes)
    )
    authenticate_sync(runtime, bearer(minted.secret))
    assert resolver.cached(digest) is None


def test_last_use_is_batched_and_flushed_by_the_resolver(owner: User, mint: Mint) -> None:
    minted = mint(owner)
    runtime = runtime_with_resolver()
    for _ in range(3):
        authenticate_sync(runtime, bearer(minted.secret))
    assert ApiKey.objects.get().last_used_at is None  # nothing written per request
    before = datetime.now(UTC)
    async_to_sync(runtime.keys.flush_last_used)()
    last_used = ApiKey.objects.get().last_used_at
    assert last_used is not None
    assert before - timedelta(seconds=5) <= last_used <= datetime.now(UTC)


@pytest.mark.redis
def test_redis_serves_keys_to_a_fresh_process_without_queries(owner: User, mint: Mint) -> None:
    from django.conf import settings

    minted = mint(owner, rpm=7)  # committed: the entry is in Redis now
    made_up = bearer(made_up_key())

    async def fresh_resolver_authenticates(*headers: tuple[bytes, bytes]) -> KeyPolicy:
        async with GatewayRedis(settings.REDIS_URL) as redis:
            runtime = runtime_with_resolver(redis)
            return await authenticate(gateway_request(*headers), runtime.keys)

    with assert_num_queries_anywhere(0):
        assert async_to_sync(fresh_resolver_authenticates)(bearer(minted.secret)).rpm == 7
    with assert_num_queries_anywhere(1), pytest.raises(AuthenticationFailed):
        async_to_sync(fresh_resolver_authenticates)(made_up)
    with assert_num_queries_anywhere(0), pytest.raises(AuthenticationFailed):
        async_to_sync(fresh_resolver_authenticates)(made_up)  # negative entry in Redis


@pytest.mark.redis
def test_an_announcement_on_redis_drops_the_cached_key(owner: User, mint: Mint) -> None:
    from django.conf import settings

    minted = mint(owner)
    request = gateway_request(bearer(minted.secret))

    async def scenario() -> str:
        async with GatewayRedis(settings.REDIS_URL) as redis:
            runtime = runtime_with_resolver(redis)
            resolver = runtime.keys
            assert resolver is not None
            await resolver.start()
            # Only the Redis channel may tell it: as if the revoke happened in another process.
            resolver.store.changed.disconnect(dispatch_uid=resolver._dispatch_uid)
            try:
                await authenticate(request, runtime.keys)
                channel = resolver.store.channel(redis.db)

                async def subscribed() -> bool:
                    counts = await redis.hot.pubsub_numsub(channel)
                    return bool(counts and counts[0][1] >= 1)

                await _wait_for(subscribed)
                await authenticate(request, runtime.keys)  # cached after the subscription's clear
                await sync_to_async(key_revoke)(key=minted.key)

                async def refused_now() -> bool:
                    try:
                        await authenticate(request, runtime.keys)
                    except AuthenticationFailed as exc:
                        return "revoked" in exc.message
                    return False

                await _wait_for(refused_now)
                return "refused"
            finally:
                await resolver.stop()

    assert async_to_sync(scenario)() == "refused"


def test_a_due_refresh_happens_behind_the_request(
    owner: User, mint: Mint, monkeypatch: Any
) -> None:
    minted = mint(owner)
    monkeypatch.setattr(key_cache, "LOCAL_TTL_SECONDS", 0.0)  # every entry is due at once
    runtime = runtime_with_resolver()
    resolver = runtime.keys
    assert resolver is not None
    request = gateway_request(bearer(minted.secret))

    async def scenario() -> tuple[int, int]:
        await authenticate(request, runtime.keys)  # a miss: loaded, and already due again
        policy = await authenticate(request, runtime.keys)  # served from memory at once...
        in_flight = len(resolver._loading)  # ...with its refresh still under way
        await resolver.settle()
        return policy.key_id, in_flight

    assert async_to_sync(scenario)() == (minted.key.pk, 1)


@pytest.mark.postgres
def test_while_the_database_is_down_known_keys_work_and_unknown_ones_get_503(
    owner: User, mint: Mint, monkeypatch: Any
) -> None:
    from django.db import connection

    from tests.keys.gateway_processes import TcpRelay

    minted = mint(owner)
    monkeypatch.setattr(key_cache, "LOCAL_TTL_SECONDS", 0.0)  # past its TTL at once
    runtime = runtime_with_resolver()
    resolver = runtime.keys
    assert resolver is not None
    known = gateway_request(bearer(minted.secret))
    db = connection.settings_dict
    relay = TcpRelay(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))
    direct_port = db["PORT"]
    connection.close()
    db["PORT"] = str(relay.port)  # this thread's queries (the resolver's too) go through it
    try:
        authenticate_sync(runtime, bearer(minted.secret))
        relay.cut()

        async def during_the_outage() -> tuple[int, int]:
            policy = await authenticate(known, runtime.keys)  # due a refresh, served anyway
            await resolver.settle()  # the refresh failed: retried in a few seconds, not now
            await authenticate(known, runtime.keys)
            return policy.key_id, len(resolver._loading)

        assert async_to_sync(during_the_outage)() == (minted.key.pk, 0)
        with pytest.raises(ServiceUnavailable) as caught:
            authenticate_sync(runtime, bearer(made_up_key()))
        assert caught.value.status == 503
        assert "database is unreachable" in caught.value.message
    finally:
        relay.cut()
        connection.close()
        db["PORT"] = direct_port
