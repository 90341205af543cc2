"""Redis hangs under load: requests are still held (in this process, against the database's
figures) and served, their usage events are recorded in the database by the gateway itself
(nothing waits for Redis, nothing is lost if the gateway stops meanwhile), what it recorded is
pushed to Redis's figures once it answers again, and each request is charged exactly once."""

import concurrent.futures
import time
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
import redis
from django.conf import settings as django_settings
from prometheus_client import REGISTRY

from billing import tasks
from billing.models import Balance, LedgerEntry, UsageRecord
from billing.reservations import account_keys
from billing.selectors import ledger_sum
from keys.services import key_mint
from keys.validation import KeySpec
from proxy.gateway.pipeline import metering
from proxy.models import UpstreamCredential
from tests.conftest import LiveServer
from tests.fakes.server import FakeServer, Scripted
from tests.proxy.test_ceiling import account
from tests.redis_faults import StallingRedis

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BODY = orjson.dumps({"model": "GPT-4o", "messages": [{"role": "user", "content": "Hello!"}]})


def reserve_fallbacks() -> float:
    value = REGISTRY.get_sample_value("tokenbyte_redis_fallbacks_total", {"operation": "reserve"})
    return value or 0.0


def burst(server: LiveServer, secret: str, count: int) -> list[int]:
    def call(_: int) -> int:
        return httpx.post(
            f"{server.url}/v1/chat/completions",
            content=BODY,
            headers={"authorization": f"Bearer {secret}", "content-type": "application/json"},
            timeout=30,
        ).status_code

    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        return list(pool.map(call, range(count)))


def usage_fallbacks() -> float:
    value = REGISTRY.get_sample_value("tokenbyte_redis_fallbacks_total", {"operation": "usage"})
    return value or 0.0


def wait_for(condition: Any, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def drained_to(client: redis.Redis, owner_id: int, count: int) -> bool:
    """Billing's consumer drains the stream once; whether `count` records are in."""
    tasks.drain(client, consumer="outage-test", budget=1)
    return UsageRecord.objects.filter(account_id=owner_id).count() == count


def assert_charged_once_each(owner_id: int, before: Decimal, requests: int) -> None:
    records = UsageRecord.objects.filter(account_id=owner_id)
    assert records.count() == requests
    charges = LedgerEntry.objects.filter(account_id=owner_id, kind="charge")
    assert charges.count() == requests
    assert set(charges.values_list("event_id", flat=True)) == set(
        records.values_list("event_id", flat=True)
    )
    charged = sum(records.values_list("charged", flat=True), Decimal(0))
    balance = Balance.objects.get(account_id=owner_id).amount
    assert balance == ledger_sum(account_id=owner_id) == before - charged


def test_a_hung_redis_under_load_loses_and_double_charges_nothing(
    openai_upstream: UpstreamCredential, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metering, "RETRY_DELAYS", (0.1, 0.2, 0.3))
    owner = account("10")
    before = Balance.objects.get(account_id=owner.pk).amount
    secret = key_mint(owner=owner, spec=KeySpec(name="outage")).secret
    real = redis.Redis.from_url(django_settings.REDIS_URL)
    fallbacks, recorded_here = reserve_fallbacks(), usage_fallbacks()
    mirror = account_keys(owner.pk).balance
    with StallingRedis(relay=True) as stand_in:
        settings.REDIS_URL = stand_in.url
        settings.TOKENBYTE_REDIS_BREAKER_SECONDS = 0.3
        with LiveServer() as server:
            assert burst(server, secret, 10) == [200] * 10  # held in Redis
            stand_in.stall()
            # Held within this process's lease (in Redis, for a while yet), until shipments
            # time out and the breaker opens; then recorded by the gateway itself (the first
            # 10 are in the stream).
            assert burst(server, secret, 20) == [200] * 20
            wait_for(
                lambda: UsageRecord.objects.filter(account_id=owner.pk).count() == 20,
                "the gateway did not record its usage while Redis hung",
            )
            assert usage_fallbacks() >= recorded_here + 20
            assert burst(server, secret, 10) == [200] * 10  # held in the database
            assert reserve_fallbacks() >= fallbacks + 10
            wait_for(
                lambda: UsageRecord.objects.filter(account_id=owner.pk).count() == 30,
                "the gateway did not record the calls it held in the database",
            )
            stand_in.heal()
            # What it recorded reaches Redis's mirror of the balance once Redis answers.
            version = Balance.objects.get(account_id=owner.pk).version
            wait_for(
                lambda: int(real.hget(mirror, "ver") or -1) >= version,
                "the charges recorded while Redis hung were not pushed to its mirror",
            )
            wait_for(lambda: drained_to(real, owner.pk, 40), "the stream's events were not billed")
    real.close()
    assert_charged_once_each(owner.pk, before, 40)


def test_a_gateway_stopped_while_redis_hangs_records_every_answer_first(
    openai_upstream: UpstreamCredential, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metering, "RETRY_DELAYS", (0.1, 0.2, 0.3))
    owner = account("10")
    before = Balance.objects.get(account_id=owner.pk).amount
    secret = key_mint(owner=owner, spec=KeySpec(name="outage-stop")).secret
    with StallingRedis(relay=True) as stand_in:
        settings.REDIS_URL = stand_in.url
        settings.TOKENBYTE_REDIS_BREAKER_SECONDS = 30  # no probe gets through before the stop
        with LiveServer() as server:
            stand_in.stall()
            assert burst(server, secret, 20) == [200] * 20
        # Stopped: every answer it gave is charged, none waits in its memory for Redis.
        assert_charged_once_each(owner.pk, before, 20)


def test_a_call_held_in_redis_that_ends_while_it_hangs_is_cleared_there_after(
    openai_upstream: UpstreamCredential,
    fake_openai: FakeServer,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metering, "RETRY_DELAYS", (0.1, 0.2, 0.3))
    owner = account("10")
    before = Balance.objects.get(account_id=owner.pk).amount
    secret = key_mint(owner=owner, spec=KeySpec(name="outage-live")).secret
    real = redis.Redis.from_url(django_settings.REDIS_URL)
    holds = account_keys(owner.pk).holds
    fake_openai.app.script.append(Scripted(delay=1.5))  # answers once Redis hangs
    with StallingRedis(relay=True) as stand_in:
        settings.REDIS_URL = stand_in.url
        settings.TOKENBYTE_REDIS_BREAKER_SECONDS = 0.3
        with LiveServer() as server, concurrent.futures.ThreadPoolExecutor(1) as pool:
            slow = pool.submit(burst, server, secret, 1)
            wait_for(lambda: real.hlen(holds) == 1, "the slow call was not held in Redis")
            stand_in.stall()
            assert burst(server, secret, 3) == [200] * 3  # the breaker opens
            assert slow.result() == [200]
            wait_for(
                lambda: UsageRecord.objects.filter(account_id=owner.pk).count() == 4,
                "the calls that ended while Redis hung were not recorded here",
            )
            assert real.hlen(holds) == 1  # its hold is still in Redis (renewed, not settled)
            stand_in.heal()
            # Long before its hold could expire (60 s), the gateway clears it with its charge.
            wait_for(
                lambda: real.hlen(holds) == 0 and burst(server, secret, 1) == [200],
                "the hold of a call recorded here stayed in Redis",
                seconds=15,
            )
            wait_for(lambda: drained_to(real, owner.pk, 5), "the last call was not billed")
    real.close()
    assert_charged_once_each(owner.pk, before, 5)
