"""Leases (proxy/gateway/leases.py, billing/reservations.py): a process holds money for many
calls at once. The scripts keep Redis's `held` equal to what leases and pending charges hold;
a gateway serves many calls from one lease and gives back what it does not use."""

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
import redis
import redis.asyncio as aioredis
from django.conf import settings as django_settings

from billing import tasks
from billing.models import Balance, LedgerEntry
from billing.reservations import (
    CLEAR,
    LEASE,
    LEASE_RETURN,
    LEASE_SETTLE,
    RESERVE,
    account_keys,
)
from billing.selectors import ledger_sum
from keys.services import key_mint
from keys.validation import KeySpec
from proxy.gateway import leases
from proxy.gateway.leases import Leases
from proxy.gateway.scripts import LuaScript
from proxy.models import UpstreamCredential
from tests.conftest import LiveServer
from tests.proxy.test_ceiling import account
from tokenbyte.redis import GatewayRedis

pytestmark = pytest.mark.redis

ACCOUNT = 424242
KEYS = account_keys(ACCOUNT)


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    client.delete(KEYS.main, KEYS.holds, KEYS.expiry, KEYS.balance)
    client.hset(KEYS.balance, mapping={"amt": 1000, "lim": 0, "ver": 1})
    yield client
    client.delete(KEYS.main, KEYS.holds, KEYS.expiry, KEYS.balance)
    client.close()


def run(client: redis.Redis, script: str, keys: list[str], *args: Any) -> Any:
    return client.eval(script, len(keys), *keys, *args)


def lease(client: redis.Redis, lease_id: str, need: int, want: int, ms: int = 60_000) -> Any:
    return run(client, LEASE, KEYS.all, lease_id, need, want, ms, "0", "", "", "", 300)


def held(client: redis.Redis) -> int:
    return int(client.hget(KEYS.main, "held") or 0)


def test_a_lease_grows_by_what_it_wants_while_that_is_an_eighth_of_what_is_available(
    client: redis.Redis,
) -> None:
    assert lease(client, "lease:a", 10, 125) == [2, 875, 125]  # 125 * 8 <= 1000
    assert lease(client, "lease:a", 10, 125) == [1, 865, 135]  # 125 * 8 > 875: only the need
    assert lease(client, "lease:b", 866, 866) == [0, 865]  # not even the need fits
    assert held(client) == 135
    # A call held on its own sees what the lease holds.
    reserve = [KEYS.main, KEYS.holds, KEYS.expiry, KEYS.balance, KEYS.spend(7, "none")]
    args = ["call", 866, 7, "", 60_000, "0", "", "", "", "", "", 300]
    assert run(client, RESERVE, reserve, *args)[0] == 0


def test_settled_charges_move_out_of_the_lease_once_and_billing_clears_them(
    client: redis.Redis,
) -> None:
    lease(client, "lease:a", 100, 100)
    keys = [KEYS.main, KEYS.holds, KEYS.expiry]
    assert run(client, LEASE_SETTLE, keys, "lease:a", 60_000, "e1", 30, "e2", 20) == 1
    assert run(client, LEASE_SETTLE, keys, "lease:a", 60_000, "e1", 30) == 1  # a retry
    assert int(client.hget(KEYS.main, "ls:lease:a")) == 50
    assert held(client) == 100  # moved, not released: 50 leased + 50 pending
    run(client, CLEAR, KEYS.all, "", "", "", "e1", "e2", 300)  # billing recorded them
    assert held(client) == 50
    assert run(client, LEASE_RETURN, keys, "lease:a", 20) == 30
    assert run(client, LEASE_RETURN, keys, "lease:a", 30) == -1  # whole: the lease goes
    assert held(client) == 0
    assert client.hlen(KEYS.holds) == 0
    assert run(client, LEASE_SETTLE, keys, "lease:a", 60_000, "e3", 5) == 0  # gone


def test_a_lease_whose_process_died_is_swept_whole(client: redis.Redis) -> None:
    lease(client, "lease:dead", 100, 100, ms=1)
    time.sleep(0.01)
    assert lease(client, "lease:live", 10, 10)[0] == 2  # sweeps on its way
    assert held(client) == 10
    assert client.hget(KEYS.holds, "lease:dead") is None


@pytest.mark.django_db(transaction=True)
def test_a_gateway_serves_many_calls_from_one_lease_and_gives_back_what_it_does_not_use(
    openai_upstream: UpstreamCredential, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(leases, "IDLE_SECONDS", 0.5)
    owner = account("10")
    before = Balance.objects.get(account_id=owner.pk).amount
    secret = key_mint(owner=owner, spec=KeySpec(name="leased")).secret
    keys = account_keys(owner.pk)
    real = redis.Redis.from_url(django_settings.REDIS_URL)
    body = orjson.dumps({"model": "GPT-4o", "messages": [{"role": "user", "content": "Hi"}]})
    headers = {"authorization": f"Bearer {secret}", "content-type": "application/json"}
    with LiveServer() as server:
        for _ in range(20):
            assert httpx.post(f"{server.url}/v1/chat/completions", content=body, headers=headers)
        holds = {k.decode(): v.decode() for k, v in real.hgetall(keys.holds).items()}
        assert [k for k, v in holds.items() if v == "L"] != []  # served within a lease
        assert len([v for v in holds.values() if v == "L"]) == 1  # one lease for all 20
        deadline = time.monotonic() + 15
        while real.hlen(keys.holds) or int(real.hget(keys.main, "held") or 0):
            assert time.monotonic() < deadline, "the idle lease was not given back"
            tasks.drain(real, consumer="lease-test", budget=1)
            time.sleep(0.1)
    real.close()
    charges = LedgerEntry.objects.filter(account_id=owner.pk, kind="charge")
    assert charges.count() == 20
    balance = Balance.objects.get(account_id=owner.pk).amount
    assert balance == ledger_sum(account_id=owner.pk) < before
    assert sum(charges.values_list("amount", flat=True), Decimal(0)) == balance - before


def test_a_call_its_process_s_lease_cannot_cover_is_held_with_the_lease_s_spare_given_back(
    client: redis.Redis,
) -> None:
    client.hset(KEYS.balance, mapping={"amt": 10_000_000_000, "ver": 2})  # $10

    async def scenario() -> tuple[Decimal | None, Decimal | None]:
        gateway_redis = GatewayRedis(django_settings.REDIS_URL)
        leased = Leases(gateway_redis, None, postpaid=False, hold_ms=60_000, pending_ms=60_000)
        try:
            small = await leased.reserve("small", ACCOUNT, Decimal("0.01"))  # leases 64 of it
            big = await leased.reserve("big", ACCOUNT, Decimal("9.5"))  # more than is left
            return small, big
        finally:
            await gateway_redis.aclose()

    small, big = asyncio.run(scenario())
    assert small == Decimal("0.63")
    assert big is None  # held on its own (the purse's exact path) ...
    assert held(client) == 10_000_000  # ... with all the lease did not use given back


def test_a_script_redis_does_not_know_is_loaded_and_run() -> None:
    script = LuaScript(f"return 'ran {time.time_ns()}'")  # never loaded before

    async def scenario() -> Any:
        client = aioredis.Redis.from_url(django_settings.REDIS_URL)
        try:
            return await script.run(client, [], [])
        finally:
            await client.aclose()

    assert asyncio.run(scenario()).startswith(b"ran ")
