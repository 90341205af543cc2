"""Redis hangs under load: requests are still held (in this process, against the database's
figures) and served, their usage events wait and reach Redis once it answers again, and each
is recorded and charged exactly once."""

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
from billing.selectors import ledger_sum
from keys.services import key_mint
from keys.validation import KeySpec
from proxy.gateway.pipeline import metering
from proxy.models import UpstreamCredential
from tests.conftest import LiveServer
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


def test_a_hung_redis_under_load_loses_and_double_charges_nothing(
    openai_upstream: UpstreamCredential, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metering, "RETRY_DELAYS", (0.1, 0.2, 0.3))
    owner = account("10")
    before = Balance.objects.get(account_id=owner.pk).amount
    secret = key_mint(owner=owner, spec=KeySpec(name="outage")).secret
    real = redis.Redis.from_url(django_settings.REDIS_URL)
    fallbacks = reserve_fallbacks()
    with StallingRedis(relay=True) as stand_in:
        settings.REDIS_URL = stand_in.url
        settings.TOKENBYTE_REDIS_BREAKER_SECONDS = 0.3
        with LiveServer() as server:
            assert burst(server, secret, 10) == [200] * 10  # held in Redis
            stand_in.stall()
            assert burst(server, secret, 20) == [200] * 20  # held in this process
            assert reserve_fallbacks() >= fallbacks + 20  # each held here, none unheld
            stand_in.heal()
            deadline = time.monotonic() + 30
            while UsageRecord.objects.filter(account_id=owner.pk).count() < 30:
                assert time.monotonic() < deadline, "the events did not all reach billing"
                tasks.drain(real, consumer="outage-test", budget=1)
                time.sleep(0.1)
    real.close()
    records = UsageRecord.objects.filter(account_id=owner.pk)
    assert records.count() == 30
    charges = LedgerEntry.objects.filter(account_id=owner.pk, kind="charge")
    assert charges.count() == 30
    charged = sum(records.values_list("charged", flat=True), Decimal(0))
    balance = Balance.objects.get(account_id=owner.pk).amount
    assert balance == ledger_sum(account_id=owner.pk) == before - charged
