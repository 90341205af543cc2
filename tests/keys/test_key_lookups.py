"""Key-cache misses: threads of their own, a bounded backlog, connections closed at the end.

Run like tests/keys/test_auth.py (async_to_sync from the test's thread); queries are counted in
every thread, since the lookups run on threads of their own.
"""

import asyncio
import threading
import time
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from prometheus_client import REGISTRY

from accounts.models import User
from proxy import key_cache
from proxy.auth import KeyPolicy, authenticate
from proxy.db import run_in_db_thread
from proxy.errors import AuthenticationFailed, GatewayError, ServiceUnavailable
from tests.keys.conftest import (
    Mint,
    bearer,
    gateway_request,
    made_up_key,
    runtime_with_resolver,
)

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 10.0  # seconds: generous, the machine is shared


def refusals(reason: str) -> float:
    return REGISTRY.get_sample_value("tokenbyte_key_lookups_refused_total", {"reason": reason}) or 0


class BlockedLookups:
    """key_cache_lookup held until released, so lookups pile up on the lane's threads."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()
        real = key_cache.key_cache_lookup

        def held(secret_hash: str) -> dict[str, Any]:
            self.entered.release()
            self.release.wait(WAIT)
            return real(secret_hash)

        monkeypatch.setattr(key_cache, "key_cache_lookup", held)


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
            authenticate(gateway_request(bearer(made_up_key())), runtime)
        )
        await asyncio.to_thread(blocked_lookups.entered.acquire, timeout=WAIT)  # on the thread
        waiting = asyncio.ensure_future(
            authenticate(gateway_request(bearer(made_up_key())), runtime)
        )
        await asyncio.sleep(0.05)  # in the backlog
        with pytest.raises(ServiceUnavailable) as caught:
            await authenticate(gateway_request(bearer(made_up_key())), runtime)
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
                authenticate(gateway_request(bearer(minted.secret)), runtime), WAIT
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
        await asyncio.gather(*(authenticate(gateway_request(bearer(k)), runtime) for k in keys))
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
