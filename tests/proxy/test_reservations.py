"""Reservations across gateway processes (Redis): however many requests race for one balance,
it never goes below zero and the ledger moves by exactly the charges, also while Redis hangs
(the processes hold in the database then); a process that dies leaves holds the sweeper
releases, also when it is killed under load, where every answer a client received whole is
charged exactly once."""

import concurrent.futures
import contextlib
import itertools
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
import redis
from django.conf import settings

from billing import tasks
from billing.models import Balance, LedgerEntry, UsageRecord
from billing.money import charge_for
from billing.reservations import account_keys
from billing.selectors import ledger_sum
from keys.services import key_mint
from keys.validation import KeySpec
from proxy.models import UpstreamCredential
from tests.fakes.server import FakeServer, Scripted
from tests.keys.gateway_processes import RUNNING, gateway_process
from tests.proxy.test_ceiling import account, worst
from tests.redis_faults import StallingRedis
from tokenbyte.redis import USAGE_STREAM

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REQUESTS = 100
PROMPT = "word " * 800  # the fake counts 803 prompt tokens; the bound is its bytes + overhead


def drain_until(count: int, account_id: int) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    deadline = time.monotonic() + 30
    while UsageRecord.objects.filter(account_id=account_id).count() < count:
        assert time.monotonic() < deadline, "the usage events did not all arrive"
        tasks.drain(client, consumer="reservation-test", budget=1)
        time.sleep(0.1)
    client.close()


@pytest.mark.parametrize("redis_state", ["answering", "hung"])
def test_a_hundred_racing_requests_on_two_processes_never_overdraw_the_balance(
    openai_upstream: UpstreamCredential, fake_openai: FakeServer, redis_state: str
) -> None:
    raw = orjson.dumps(
        {
            "model": "GPT-4o",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": PROMPT}],
        }
    )
    worst_case = worst(raw, 100)
    # Ten worst cases: were the calls not held, all hundred (each costing a sixth of its worst
    # case) would together take more than that.
    owner = account(str((10 * worst_case).quantize(Decimal("1e-9"))))
    before = Balance.objects.get(account_id=owner.pk).amount
    secret = key_mint(owner=owner, spec=KeySpec(name="racing")).secret
    fake_openai.app.script.extend(Scripted(delay=0.3) for _ in range(REQUESTS))

    env: dict[str, str | None] = {}
    with contextlib.ExitStack() as stack:
        stand_in = stack.enter_context(StallingRedis(relay=True))
        if redis_state == "hung":
            env["REDIS_URL"] = stand_in.url
            env["TOKENBYTE_REDIS_BREAKER_SECONDS"] = "60"
        first = stack.enter_context(gateway_process(**env))
        second = stack.enter_context(gateway_process(**env))
        if redis_state == "hung":  # the processes hold in the database, together
            stand_in.stall()

        def call(index: int) -> int:
            url = first if index % 2 else second
            return httpx.post(
                f"{url}/v1/chat/completions",
                content=raw,
                headers={"authorization": f"Bearer {secret}", "content-type": "application/json"},
                timeout=60,
            ).status_code

        with concurrent.futures.ThreadPoolExecutor(REQUESTS) as pool:
            statuses = list(pool.map(call, range(REQUESTS)))
        drain_until(REQUESTS, owner.pk)  # while Redis hangs the gateways record themselves

    assert set(statuses) <= {200, 402}
    served = statuses.count(200)
    assert served >= 10
    records = UsageRecord.objects.filter(account_id=owner.pk)
    assert sorted(records.values_list("status", flat=True)) == sorted(statuses)
    charged = sum(records.values_list("charged", flat=True), Decimal(0))
    balance = Balance.objects.get(account_id=owner.pk).amount
    assert balance >= 0
    assert balance == ledger_sum(account_id=owner.pk) == before - charged
    charges = LedgerEntry.objects.filter(account_id=owner.pk, kind="charge")
    assert charges.count() == records.filter(charged__gt=0).count() == served
    assert not records.filter(status=402, charged__gt=0).exists()
    # Each charge is its record's, once.
    by_event = dict(charges.values_list("event_id", "amount"))
    assert all(by_event[r.event_id] == -r.charged for r in records.filter(status=200))
    print(f"{served} of {REQUESTS} served within {10} worst cases of ${worst_case}")


def test_the_holds_of_a_killed_process_are_swept(
    openai_upstream: UpstreamCredential, fake_openai: FakeServer
) -> None:
    owner = account("1")
    secret = key_mint(owner=owner, spec=KeySpec(name="killed")).secret
    keys = account_keys(owner.pk)
    client = redis.Redis.from_url(settings.REDIS_URL)
    raw = orjson.dumps(
        {"model": "GPT-4o", "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    )
    fake_openai.app.script.append(Scripted(delay=30))  # the upstream thinks for long
    with gateway_process(TOKENBYTE_RESERVATION_SECONDS="2") as url:
        pool = concurrent.futures.ThreadPoolExecutor(1)
        pending = pool.submit(
            httpx.post,
            f"{url}/v1/chat/completions",
            content=raw,
            headers={"authorization": f"Bearer {secret}", "content-type": "application/json"},
            timeout=60,
        )
        deadline = time.monotonic() + 10
        while not int(client.hget(keys.main, "held") or 0):
            assert time.monotonic() < deadline, "no hold appeared"
            time.sleep(0.05)
        # Renewed while the call lives: still there after its first deadline.
        time.sleep(3)
        assert int(client.hget(keys.main, "held") or 0) > 0
        RUNNING[url].kill()  # SIGKILL: no shutdown, no clean-up
        RUNNING[url].wait()
        pool.shutdown(wait=True, cancel_futures=True)
        assert pending.exception() is not None
    time.sleep(2.5)  # past the dead hold's deadline
    with gateway_process() as url:
        answer = httpx.post(
            f"{url}/v1/chat/completions",
            content=orjson.dumps(
                {"model": "GPT-4o", "messages": [{"role": "user", "content": "Hi"}]}
            ),
            headers={"authorization": f"Bearer {secret}", "content-type": "application/json"},
            timeout=30,
        )
        assert answer.status_code == 200
        deadline = time.monotonic() + 10
        while client.hlen(keys.holds) and client.zcard(keys.expiry) != client.hlen(keys.holds):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    # The killed call left no usage event (its client got no answer, so nothing is charged);
    # the served call's is recorded, and its charge cleared from the holds.
    drain_until(1, owner.pk)
    assert int(client.hget(keys.main, "held") or 0) == 0
    assert client.hlen(keys.holds) == 0
    client.close()


CLIENTS = 16


@dataclass
class Outcome:
    request_id: str
    stream: bool
    complete: bool = False  # the client received the whole answer
    told: Decimal | None = None  # the answer's usage.cost


def call_until_killed(
    url: str, secret: str, client_no: int, killed: threading.Event
) -> list[Outcome]:
    """One client's requests, streamed and whole in turn, until its gateway is gone."""
    outcomes: list[Outcome] = []
    with httpx.Client(base_url=url, timeout=60) as http:
        for n in itertools.count():
            stream = n % 2 == client_no % 2
            outcome = Outcome(f"kill-{client_no}-{n}", stream)
            outcomes.append(outcome)
            body: dict[str, object] = {
                "model": "GPT-4o",
                "max_tokens": 50,
                "messages": [{"role": "user", "content": f"Hi {client_no} {n}"}],
            }
            if stream:
                body |= {"stream": True, "stream_options": {"include_usage": True}}
            headers = {"authorization": f"Bearer {secret}", "x-request-id": outcome.request_id}
            try:
                with http.stream(
                    "POST", "/v1/chat/completions", content=orjson.dumps(body), headers=headers
                ) as answer:
                    raw = answer.read()
                    if answer.status_code != 200:
                        continue
            except httpx.TransportError:
                return outcomes  # killed (or about to be: nothing after the kill counts)
            if stream:
                frames = [f for f in raw.split(b"\n\n") if f.startswith(b"data: ")]
                if frames and frames[-1] == b"data: [DONE]":
                    usage = orjson.loads(frames[-2][6:])["usage"]
                    outcome.told = Decimal(orjson.dumps(usage["cost"]).decode())
                    outcome.complete = True
            else:
                outcome.told = Decimal(orjson.dumps(orjson.loads(raw)["usage"]["cost"]).decode())
                outcome.complete = True
            if killed.is_set():
                return outcomes
    return outcomes


def redis_now_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def test_a_gateway_killed_under_load_charges_each_complete_answer_once_and_its_holds_go(
    openai_upstream: UpstreamCredential, fake_openai: FakeServer
) -> None:
    owner = account("100")
    before = Balance.objects.get(account_id=owner.pk).amount
    secret = key_mint(owner=owner, spec=KeySpec(name="killed under load")).secret
    keys = account_keys(owner.pk)
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(USAGE_STREAM)
    fake_openai.app.chunk_delay = 0.05  # streams stay in flight a while; whole answers do not
    killed = threading.Event()
    with (
        gateway_process(TOKENBYTE_RESERVATION_SECONDS="2") as url,
        concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool,
    ):
        runs = [pool.submit(call_until_killed, url, secret, n, killed) for n in range(CLIENTS)]
        # Mid-load: answers have been completed, and calls are held in flight.
        deadline = time.monotonic() + 60
        while client.xlen(USAGE_STREAM) < 4 * CLIENTS or not client.hlen(keys.holds):
            assert time.monotonic() < deadline, "the load did not build up"
            assert not any(run.done() for run in runs), [r.exception() for r in runs]
            time.sleep(0.02)
        RUNNING[url].kill()  # SIGKILL: no shutdown, no clean-up, nothing flushed
        RUNNING[url].wait()
        killed.set()
        outcomes = [outcome for run in runs for outcome in run.result()]
    in_flight = client.hgetall(keys.holds)
    assert in_flight, "the kill landed between calls: no hold was in flight"

    # Billing drains what the dead process shipped.
    drainer = "killed-gateway-test"
    while client.xlen(USAGE_STREAM):
        tasks.drain(client, consumer=drainer, budget=1)
    complete = [o for o in outcomes if o.complete]
    assert len(complete) >= 2 * CLIENTS
    records = UsageRecord.objects.filter(account_id=owner.pk)
    charges = LedgerEntry.objects.filter(account_id=owner.pk, kind="charge")
    for outcome in complete:
        (record,) = records.filter(request_id=outcome.request_id)
        assert record.status == 200
        assert record.cost == outcome.told
        assert record.charged == charge_for(outcome.told) > 0
        entries = charges.filter(request_id=outcome.request_id)
        assert list(entries.values_list("event_id", "amount")) == [
            (record.event_id, -record.charged)
        ]
    # No event charged twice, none without its record; incomplete ones at most once each.
    assert charges.count() == charges.values("event_id").distinct().count()
    assert records.count() == records.values("request_id").distinct().count()
    assert charges.count() == records.filter(charged__gt=0).count()
    charged = sum(records.values_list("charged", flat=True), Decimal(0))
    balance = Balance.objects.get(account_id=owner.pk).amount
    assert balance == ledger_sum(account_id=owner.pk) == before - charged

    # Recorded charges' holds were cleared by billing; what is left is the dead process's
    # calls in flight, each with its worst case, which the next reservation sweeps once their
    # deadline (TOKENBYTE_RESERVATION_SECONDS, no longer renewed) has passed.
    left = client.hgetall(keys.holds)
    assert left
    assert set(left) <= set(in_flight)
    assert not records.filter(event_id__in=[hold.decode() for hold in left]).exists()
    scored: Any = client.zrange(keys.expiry, 0, -1, withscores=True)
    last_deadline = max(score for _, score in scored)
    deadline = time.monotonic() + 30
    while redis_now_ms(client) <= last_deadline:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    with gateway_process() as url:
        answer = httpx.post(
            f"{url}/v1/chat/completions",
            content=orjson.dumps(
                {"model": "GPT-4o", "messages": [{"role": "user", "content": "Hi"}]}
            ),
            headers={"authorization": f"Bearer {secret}", "content-type": "application/json"},
            timeout=30,
        )
        assert answer.status_code == 200
        deadline = time.monotonic() + 30
        while client.xlen(USAGE_STREAM) == 0:
            assert time.monotonic() < deadline, "the new call's usage event did not arrive"
            time.sleep(0.05)
    while client.xlen(USAGE_STREAM):
        tasks.drain(client, consumer=drainer, budget=1)
    assert client.hlen(keys.holds) == 0
    assert client.zcard(keys.expiry) == 0
    assert int(client.hget(keys.main, "held") or 0) == 0
    assert all(
        int(amount) == 0
        for name, amount in client.hgetall(keys.main).items()
        if name.startswith(b"hk:")
    )
    assert Balance.objects.get(account_id=owner.pk).amount == ledger_sum(account_id=owner.pk)
    client.close()
    print(
        f"{len(complete)} of {len(outcomes)} answers complete, {records.count() - 1} recorded,"
        f" {len(left)} holds of calls in flight swept"
    )
