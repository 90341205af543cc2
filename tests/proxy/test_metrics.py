"""What operators see: one JSON access-log line per API request, and /metrics, summed over
every worker process of `manage.py serve` and protected by a token or by loopback."""

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

from accounts.models import User
from billing.events import UpstreamAttempt, UsageEvent
from billing.usage import Usage
from keys.services import key_mint
from keys.validation import KeySpec
from proxy.gateway.observe import ACCESS_LOG, UNKNOWN, Observer, access_line, observe, observe_all
from proxy.models import UpstreamCredential
from tests.conftest import REPO, LiveServer, free_port, manage_env
from tokenbyte.metrics import REFUSALS, REQUESTS, UPSTREAM_ATTEMPTS, UPSTREAM_ERRORS
from tokenbyte.metrics_endpoint import refusal

TOKEN = "metrics-token-for-tests"
REDIS_DB = "redis://127.0.0.1:6379/10"
ACCESS_FIELDS = {
    "request_id",
    "event_id",
    "key_id",
    "account_id",
    "endpoint",
    "model",
    "provider",
    "status",
    "error_code",
    "latency_ms",
    "ttfb_ms",
    "attempts",
    "stream",
    "tokens_in",
    "tokens_out",
    "cost",
}


def event(**fields: Any) -> UsageEvent:
    values: dict[str, Any] = {
        "event_id": "evt_1",
        "request_id": "req_1",
        "endpoint": "chat.completions",
        "key_id": 1,
        "account_id": 2,
        "card_id": None,
        "model": "",
        "provider": None,
        "upstream_model": None,
        "credential_id": None,
        "status": 404,
        "error_code": "model_not_found",
        "stream": False,
        "usage": Usage(),
        "cost": Decimal(0),
        "started_at": 0.0,
        "latency_ms": 1.5,
        "ttfb_ms": None,
        "attempts": 0,
    }
    return UsageEvent(**{**values, **fields})


def scope(client: str = "127.0.0.1", **headers: str) -> dict[str, Any]:
    return {
        "method": "GET",
        "path": "/metrics",
        "client": (client, 5000),
        "headers": [
            (name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()
        ],
    }


# --- in this process ---------------------------------------------------------------------------
def test_the_access_line_is_one_line_of_valid_json_whatever_the_model_is_called() -> None:
    odd = 'GPT "4o"\n\\ \u2028 {model}' + "x" * 180
    line = access_line(event(model=odd), 0, 0)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["model"] == odd
    assert parsed.keys() >= ACCESS_FIELDS
    assert "failed_attempts" not in parsed  # only a failover has them


def test_a_failover_line_names_each_failed_try_in_order() -> None:
    tries = (
        UpstreamAttempt(41, 0.5, 10.25, None, "upstream_unreachable"),
        UpstreamAttempt(42, 60.0, 5.5, 503, "upstream_error"),
        UpstreamAttempt(43, 170.0, 20.0, 200, None),
    )
    line = access_line(event(credential_id=43, attempts=3, attempt_log=tries), 0, 0)
    parsed = json.loads(line)
    assert parsed["failed_attempts"] == [
        [41, None, "upstream_unreachable", 10.25],
        [42, 503, "upstream_error", 5.5],
    ]
    assert parsed["credential_id"] == 43
    assert parsed.keys() >= ACCESS_FIELDS


def test_a_request_no_card_was_found_for_is_counted_under_unknown() -> None:
    def count(model: str) -> float:
        value = REQUESTS.labels("chat.completions", model, UNKNOWN, "404")._value.get()
        return float(value)

    before = count(UNKNOWN)
    observe([event(model="anything a client makes up " * 7)])
    assert count(UNKNOWN) == before + 1
    assert count("anything a client makes up " * 7) == 0


def test_rate_limit_and_ceiling_refusals_are_counted_by_their_code() -> None:
    def count(reason: str) -> float:
        return float(REFUSALS.labels(reason)._value.get())

    limited, short = count("rate_limit_exceeded"), count("insufficient_balance")
    card = {"model": "GPT-4o", "provider": "openai", "card_id": 1}
    observe([event(status=429, error_code="rate_limit_exceeded", **card)])
    observe([event(status=402, error_code="insufficient_balance", **card)])
    observe([event(status=200, error_code=None, **card)])
    assert (count("rate_limit_exceeded"), count("insufficient_balance")) == (limited + 1, short + 1)


def test_each_failed_try_counts_against_its_credential_and_retries_are_counted() -> None:
    def errors(credential: int, reason: str) -> float:
        return float(UPSTREAM_ERRORS.labels("openai", str(credential), reason)._value.get())

    def attempts(outcome: str) -> float:
        return float(UPSTREAM_ATTEMPTS.labels("openai", outcome)._value.get())

    before = (errors(41, "upstream_timeout"), errors(42, "upstream_error"), errors(43, "x"))
    retries, finals = attempts("retry"), attempts("final")
    tries = (
        UpstreamAttempt(41, 0.5, 10.0, None, "upstream_timeout"),
        UpstreamAttempt(42, 60.0, 5.0, 500, "upstream_error"),
        UpstreamAttempt(43, 170.0, 20.0, 200, None),
    )
    card = {"model": "GPT-4o", "provider": "openai", "card_id": 1, "status": 200}
    observe([event(error_code=None, credential_id=43, attempts=3, attempt_log=tries, **card)])
    assert (errors(41, "upstream_timeout"), errors(42, "upstream_error")) == (
        before[0] + 1,
        before[1] + 1,
    )
    assert errors(43, "x") == before[2]  # the try whose answer was used is no error
    assert (attempts("retry"), attempts("final")) == (retries + 2, finals + 1)


def test_the_access_line_is_not_built_when_the_log_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any) -> str:
        raise AssertionError("built")

    monkeypatch.setattr("proxy.gateway.observe.access_line", fail)
    previous = ACCESS_LOG.level
    ACCESS_LOG.setLevel(logging.CRITICAL)
    try:
        observe([event()])
    finally:
        ACCESS_LOG.setLevel(previous)


def test_a_batch_writes_each_histogram_as_one_observe_per_amount_would() -> None:
    buckets = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
    one_by_one, batched = (
        Histogram("h", "h", ["s"], buckets=buckets, registry=CollectorRegistry()) for _ in range(2)
    )
    # On a bound, between bounds, below the first, past the last (+Inf), repeated.
    amounts = [0.0, 0.005, 0.0051, 0.01, 0.3, 0.3, 1, 7.5, 10, 10.5, 999.0, 0.0049]
    for amount in amounts:
        one_by_one.labels("x").observe(amount)
    observe_all(batched.labels("x"), amounts)

    def samples(histogram: Histogram) -> list[tuple[str, dict[str, str], float]]:
        metric = histogram.collect()
        return [
            (s.name, s.labels, s.value) for m in metric for s in m.samples if s.name != "h_created"
        ]

    assert samples(batched) == samples(one_by_one)
    assert ("h_count", {"s": "x"}, 12.0) in samples(batched)


def test_the_observer_writes_a_batch_together_and_stop_loses_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def count() -> float:
        return float(REQUESTS.labels("chat.completions", UNKNOWN, UNKNOWN, "404")._value.get())

    async def scenario() -> list[float]:
        observer = Observer(flush_seconds=0.05)
        seen = [count()]
        for number in range(3):
            observer.add(event(request_id=f"req_batch_{number}", started_at=100.0, latency_ms=250))
        seen.append(count())  # not yet: the batch waits for its timer
        await asyncio.sleep(0.2)
        seen.append(count())
        observer.add(event(request_id="req_batch_3"))
        observer.flush()  # as the runtime's stop does: nothing waits for the timer
        seen.append(count())
        return seen

    with caplog.at_level(logging.INFO, logger=ACCESS_LOG.name):
        before, unflushed, flushed, stopped = asyncio.run(scenario())
    assert (unflushed, flushed, stopped) == (before, before + 3, before + 4)
    records = [r.getMessage() for r in caplog.records if r.name == ACCESS_LOG.name]
    assert len(records) == 2  # a record per batch
    lines = [json.loads(line) for record in records for line in record.splitlines()]
    assert [line["request_id"] for line in lines] == [f"req_batch_{n}" for n in range(4)]
    assert lines[0]["time"] == 100.25  # the request's end: started_at + latency


def test_metrics_need_the_token_when_one_is_set() -> None:
    assert refusal(scope(authorization=f"Bearer {TOKEN}", x_forwarded_for="1.2.3.4"), TOKEN) is None
    assert refusal(scope("203.0.113.9", authorization=f"Bearer {TOKEN}"), TOKEN) is None
    for wrong in (scope(), scope(authorization="Bearer nope"), scope(authorization=TOKEN)):
        error = refusal(wrong, TOKEN)
        assert error is not None
        assert error.status == HTTPStatus.UNAUTHORIZED


def test_without_a_token_metrics_are_for_loopback_clients_no_proxy_forwarded() -> None:
    assert refusal(scope(), "") is None
    assert refusal(scope("::1"), "") is None
    for refused in (
        scope("203.0.113.9"),
        scope(x_forwarded_for="203.0.113.9"),  # nginx's loopback peer, a remote client
        scope(forwarded="for=203.0.113.9"),
        scope(x_real_ip="203.0.113.9"),
    ):
        error = refusal(refused, "")
        assert error is not None
        assert error.status == HTTPStatus.FORBIDDEN


def test_the_live_server_serves_metrics_to_loopback_and_refuses_what_a_proxy_forwarded(
    live_gateway: LiveServer,
) -> None:
    served = httpx.get(f"{live_gateway.url}/metrics")
    assert served.status_code == HTTPStatus.OK
    assert "tokenbyte_requests_refused_before_auth" in served.text
    # Read at the scrape from the live server's database (and Redis, when there is one).
    assert total(served.text, "tokenbyte_metering_queue_events") >= 0
    assert "tokenbyte_metering_queue_age_seconds" in served.text
    forwarded = httpx.get(f"{live_gateway.url}/metrics", headers={"X-Forwarded-For": "1.2.3.4"})
    assert forwarded.status_code == HTTPStatus.FORBIDDEN
    assert forwarded.json()["error"]["code"] == "metrics_forbidden"


# --- manage.py serve, two workers ----------------------------------------------------------------
@contextlib.contextmanager
def serving(tmp_path: Path, **env: str) -> Iterator[tuple[str, Path]]:
    """`manage.py serve --workers 2`; yields its URL and the file its stderr goes to."""
    port = free_port()
    stderr = tmp_path / "stderr.log"
    with stderr.open("wb") as errors:
        process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "serve",
                "--no-celery",
                "--workers",
                "2",
                "--port",
                str(port),
            ],
            cwd=REPO,
            env=manage_env(REDIS_URL=REDIS_DB, WEB_CONCURRENCY="2", TMPDIR=str(tmp_path), **env),
            stdout=errors,
            stderr=errors,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        ready = 0
        deadline = time.monotonic() + 90
        while ready < 10:  # on fresh connections: both workers have loaded the catalog
            assert process.poll() is None, stderr.read_text()
            assert time.monotonic() < deadline, "serve did not become ready in 90 s"
            try:
                ok = httpx.get(f"{url}/readyz", timeout=2).status_code == HTTPStatus.OK
            except httpx.TransportError:
                ok = False
            ready = ready + 1 if ok else 0
            time.sleep(0.05 if ok else 0.2)
        yield url, stderr
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def total(text: str, name: str, **labels: str) -> float:
    return sum(
        value
        for found, value in samples(text, name)
        if all(found.get(key) == want for key, want in labels.items())
    )


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
def test_two_workers_count_every_request_once_and_log_one_line_each(
    tmp_path: Path, openai_upstream: UpstreamCredential
) -> None:
    owner = User.objects.create_user("metrics@example.com")
    secret = key_mint(owner=owner, spec=KeySpec(name="metrics")).secret
    hello = [{"role": "user", "content": "Hello!"}]
    with serving(tmp_path, TOKENBYTE_METRICS_TOKEN=TOKEN) as (url, stderr):
        (metrics_dir,) = tmp_path.glob("tokenbyte-metrics-*")
        request_ids = set()
        for n in range(8):
            # A client per request: new connections, spread over the two workers.
            client = openai.OpenAI(base_url=f"{url}/v1", api_key=secret, max_retries=0)
            if n < 5:
                raw = client.chat.completions.with_raw_response.create(
                    model="GPT-4o", messages=hello
                )
                request_ids.add(raw.headers["x-request-id"])
                assert raw.parse().usage is not None
            elif n < 7:
                chunks = list(
                    client.chat.completions.create(
                        model="GPT-4o",
                        messages=hello,
                        stream=True,
                        stream_options={"include_usage": True},
                    )
                )
                assert chunks[-1].usage is not None
            else:
                with pytest.raises(openai.NotFoundError):
                    client.chat.completions.create(model="No Such Model " * 10, messages=hello)
            client.close()
        for refused_key in ("not-ours", "tb-" + "x" * 40):  # refused before auth: no event
            stranger = openai.OpenAI(base_url=f"{url}/v1", api_key=refused_key, max_retries=0)
            with pytest.raises(openai.AuthenticationError):
                stranger.chat.completions.create(model="GPT-4o", messages=hello)

        # The protection.
        assert httpx.get(f"{url}/metrics").status_code == HTTPStatus.UNAUTHORIZED
        wrong = httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == HTTPStatus.UNAUTHORIZED
        assert wrong.headers["www-authenticate"] == "Bearer"
        # Every scrape, whichever worker answers it, counts both workers' requests.
        scrapes = []
        time.sleep(1.2)  # the backlog gauge is set every second
        for _ in range(4):
            scraped = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            assert scraped.status_code == HTTPStatus.OK
            assert scraped.headers["content-type"].startswith("text/plain")
            scrapes.append(scraped.text)
        assert len({f.name for f in metrics_dir.iterdir() if f.name.startswith("counter_")}) >= 2

    for text in scrapes:
        name = "tokenbyte_requests_total"
        assert total(text, name) == 8
        assert total(text, name, model="GPT-4o", provider="openai", status="200") == 7
        assert total(text, name, model="unknown", provider="unknown", status="404") == 1
        assert {labels["model"] for labels, _ in samples(text, name)} == {"GPT-4o", "unknown"}
        assert total(text, "tokenbyte_request_duration_seconds_count", model="GPT-4o") == 7
        assert total(text, "tokenbyte_time_to_first_byte_seconds_count", model="GPT-4o") == 2
        assert total(text, "tokenbyte_tokens_total", model="GPT-4o", direction="in") > 0
        assert total(text, "tokenbyte_tokens_total", model="GPT-4o", direction="out") > 0
        assert total(text, "tokenbyte_upstream_attempts_total", outcome="final") == 7
        refused = "tokenbyte_requests_refused_before_auth_total"
        assert total(text, refused, code="invalid_api_key") == 2
        assert total(text, "tokenbyte_metering_backlog") == 0
        assert total(text, "tokenbyte_reservations_in_flight") == 0  # every call settled
        # No Celery here: the eight events wait in the usage stream, the first for a while.
        assert total(text, "tokenbyte_metering_queue_events") >= 8
        assert total(text, "tokenbyte_metering_queue_age_seconds") > 0
    assert not list(tmp_path.glob("tokenbyte-metrics-*")), "serve left its metrics directory"

    output = stderr.read_text()
    assert secret not in output
    assert "sk-fake-openai" not in output
    lines = [json.loads(line) for line in output.splitlines() if line.startswith('{"time"')]
    served = [line for line in lines if "event_id" in line]
    assert len(served) == 8
    assert len({line["event_id"] for line in served}) == 8
    assert request_ids <= {line["request_id"] for line in served}
    for line in served:
        assert line.keys() >= ACCESS_FIELDS
        assert line["key_id"] is not None
        assert line["account_id"] is not None
    by_status = sorted((line["status"], line["stream"], line["model"]) for line in served)
    assert by_status[:7] == [(200, False, "GPT-4o")] * 5 + [(200, True, "GPT-4o")] * 2
    assert by_status[7][0] == HTTPStatus.NOT_FOUND
    assert all(line["ttfb_ms"] is not None for line in served if line["stream"])
    assert all(Decimal(line["cost"]) > 0 for line in served if line["status"] == HTTPStatus.OK)
    before_auth = [line for line in lines if "event_id" not in line]
    assert [(line["status"], line["error_code"]) for line in before_auth] == [
        (401, "invalid_api_key"),
        (401, "invalid_api_key"),
    ]


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
def test_the_access_log_can_be_switched_off(
    tmp_path: Path, openai_upstream: UpstreamCredential
) -> None:
    with serving(tmp_path, TOKENBYTE_ACCESS_LOG="off") as (url, stderr):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="tb-" + "y" * 40, max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(
                model="GPT-4o", messages=[{"role": "user", "content": "x"}]
            )
        # Without a token, loopback may read the metrics; through a proxy it may not.
        assert httpx.get(f"{url}/metrics").status_code == HTTPStatus.OK
        proxied = httpx.get(f"{url}/metrics", headers={"X-Forwarded-For": "198.51.100.7"})
        assert proxied.status_code == HTTPStatus.FORBIDDEN
    assert '{"time"' not in stderr.read_text()
