"""Retries, failover, cooldowns and upstream error mapping; mid-stream failures and disconnects."""

import concurrent.futures
import dataclasses
import json
import time
from decimal import Decimal

import httpx
import openai
import pytest

from proxy.models import UpstreamCredential
from proxy.services import credential_upsert
from proxy.upstream.transport import UpstreamTransport
from tests.conftest import LiveServer, free_port
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.server import FakeServer, Scripted
from tests.proxy.conftest import EventLog

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "Say hello"}]


def wait_upstreams(gateway: LiveServer, count: int) -> None:
    gateway.wait_for_routing(
        lambda routing: len(routing.upstreams_for(routing.resolve("GPT-4o"))) == count
    )


def test_failover_to_a_healthy_credential_then_cooldown(
    gateway: LiveServer,
    openai_client: openai.OpenAI,
    fake_openai: FakeServer,
    usage_events: EventLog,
    openai_upstream: UpstreamCredential,
) -> None:
    with FakeServer(FakeOpenAI(api_key="sk-backup")) as backup:
        # The failing credential is preferred (higher priority) so it is always tried first.
        openai_upstream.priority = 10
        openai_upstream.save()
        healthy, _ = credential_upsert(
            provider="openai",
            api_key="sk-backup",
            base_url=f"{backup.url}/v1",
            name="backup",
            priority=0,
        )
        wait_upstreams(gateway, 2)
        fake_openai.app.script.append(Scripted(status=500, body={"error": {"message": "boom"}}))
        raw = openai_client.chat.completions.with_raw_response.create(
            model="GPT-4o", messages=HELLO
        )
        assert raw.parse().choices[0].message.content
        event = usage_events.for_request(raw.headers["x-request-id"])
        assert event.attempts == 2
        assert event.credential_id == healthy.pk
        # The waterfall: the failed try, then the one whose answer was used, in time order.
        first, second = event.attempt_log
        assert (first.credential_id, first.status, first.error_code) == (
            openai_upstream.pk,
            500,
            "upstream_error",
        )
        assert (second.credential_id, second.status, second.error_code) == (healthy.pk, 200, None)
        assert 0 <= first.started_ms <= first.started_ms + first.duration_ms <= second.started_ms
        assert second.started_ms + second.duration_ms <= event.latency_ms
        assert len(fake_openai.app.received) == 1
        assert len(backup.app.received) == 1
        # The failed credential now cools down: the next request goes straight to the backup.
        openai_client.chat.completions.create(model="GPT-4o", messages=HELLO)
        assert len(fake_openai.app.received) == 1
        assert len(backup.app.received) == 2


def test_unreachable_credential_fails_over(
    gateway: LiveServer,
    openai_client: openai.OpenAI,
    fake_openai: FakeServer,
    usage_events: EventLog,
    openai_upstream: UpstreamCredential,
) -> None:
    dead, _ = credential_upsert(
        provider="openai",
        api_key="sk-dead",
        base_url=f"http://127.0.0.1:{free_port()}/v1",
        name="dead",
        priority=99,
    )
    wait_upstreams(gateway, 2)
    raw = openai_client.chat.completions.with_raw_response.create(model="GPT-4o", messages=HELLO)
    assert raw.parse().choices[0].message.content
    assert len(fake_openai.app.received) == 1
    event = usage_events.for_request(raw.headers["x-request-id"])
    # No answer at all from the dead one: no status, the gateway's reason.
    assert [(a.credential_id, a.status, a.error_code) for a in event.attempt_log] == [
        (dead.pk, None, "upstream_unreachable"),
        (openai_upstream.pk, 200, None),
    ]


@pytest.mark.parametrize(
    ("scripted", "status", "code"),
    [
        (Scripted(status=500, body={"error": {"message": "internal"}}), 502, "upstream_error"),
        (
            Scripted(
                status=429, body={"error": {"message": "slow down"}}, headers={"retry-after": "7"}
            ),
            503,
            "upstream_rate_limited",
        ),
        (
            Scripted(status=401, body={"error": {"message": "bad key sk-fake…"}}),
            502,
            "upstream_auth_failed",
        ),
    ],
)
def test_upstream_failures_map_to_5xx_after_retrying(
    gateway: LiveServer,
    api_key: str,
    fake_openai: FakeServer,
    usage_events: EventLog,
    scripted: Scripted,
    status: int,
    code: str,
) -> None:
    fake_openai.app.script.extend([scripted, scripted])  # the retry fails the same way
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "GPT-4o", "messages": HELLO},
        headers={"authorization": f"Bearer {api_key}"},
        timeout=30,
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert "sk-fake" not in error["message"]  # our credential's details never reach the client
    if status == 503:
        assert response.headers["retry-after"] == "7"
    assert len(fake_openai.app.received) == 2
    event = usage_events.for_request(response.headers["x-request-id"])
    assert (event.status, event.error_code, event.cost, event.attempts) == (
        status,
        code,
        Decimal(0),
        2,
    )
    upstream_status = scripted.status
    assert [(a.status, a.error_code) for a in event.attempt_log] == [(upstream_status, code)] * 2


def test_upstream_timeout_is_504(
    gateway: LiveServer, api_key: str, fake_openai: FakeServer, settings: object
) -> None:
    settings.TOKENBYTE_FIRST_BYTE_TIMEOUT = 0.3
    fake_openai.app.script.extend([Scripted(delay=1.0), Scripted(delay=1.0)])
    started = time.monotonic()
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "GPT-4o", "messages": HELLO},
        headers={"authorization": f"Bearer {api_key}"},
        timeout=30,
    )
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"
    assert time.monotonic() - started < 5


def test_a_failure_after_streaming_began_ends_with_an_error_event(
    gateway: LiveServer, api_key: str, fake_openai: FakeServer, usage_events: EventLog
) -> None:
    fake_openai.app.script.append(Scripted(cut_after_chunks=3))
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        json={"model": "GPT-4o", "messages": HELLO, "stream": True},
        headers={"authorization": f"Bearer {api_key}"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        frames = [f for f in response.read().decode().split("\n\n") if f]
    assert "data: [DONE]" not in frames
    last = json.loads(frames[-1][6:])
    assert last["error"]["code"] in ("upstream_error", "upstream_timeout")
    event = usage_events.for_request(response.headers["x-request-id"])
    assert event.error_code == last["error"]["code"]
    assert event.usage.estimated  # the upstream never reported usage: counted from the deltas
    assert event.usage.output >= 1


def test_client_disconnect_mid_stream_cancels_upstream_and_still_meters(
    gateway: LiveServer, api_key: str, fake_openai: FakeServer, usage_events: EventLog
) -> None:
    fake_openai.app.script.append(Scripted(chunk_delay=0.2))
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        json={"model": "GPT-4o", "messages": HELLO, "stream": True},
        headers={"authorization": f"Bearer {api_key}"},
        timeout=30,
    ) as response:
        request_id = response.headers["x-request-id"]
        received = b""
        for chunk in response.iter_bytes():
            received += chunk
            if received.count(b"data: ") >= 3:
                break  # leave after three events
    event = usage_events.for_request(request_id)
    assert event.client_disconnected
    assert event.error_code == "client_disconnected"
    assert event.usage.estimated
    assert 1 <= event.usage.output < 8  # part of the eight-word answer
    assert event.cost > 0


def test_openai_sdk_raises_on_an_error_event(
    openai_client: openai.OpenAI, fake_openai: FakeServer
) -> None:
    fake_openai.app.script.append(Scripted(cut_after_chunks=2))
    with pytest.raises(openai.APIError):
        list(openai_client.chat.completions.create(model="GPT-4o", messages=HELLO, stream=True))


def test_a_busy_connection_pool_is_503_with_retry_after_and_cools_nothing_down(
    gateway: LiveServer, api_key: str, fake_openai: FakeServer, settings: object
) -> None:
    runtime = gateway.runtime
    assert runtime is not None
    transport = runtime.upstreams.transport
    assert isinstance(transport, UpstreamTransport)
    transport.options = dataclasses.replace(transport.options, max_connections_per_origin=1)
    settings.TOKENBYTE_CONNECT_TIMEOUT = 0.3  # also the longest wait for a pooled connection
    fake_openai.app.script.append(Scripted(delay=2.0))  # holds the one connection

    def ask() -> httpx.Response:
        return httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": "GPT-4o", "messages": HELLO},
            headers={"authorization": f"Bearer {api_key}"},
            timeout=30,
        )

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        slow = pool.submit(ask)
        time.sleep(0.5)  # the slow one holds the connection
        busy = ask()
        assert slow.result().status_code == 200
    assert busy.status_code == 503
    assert busy.headers["retry-after"] == "1"
    assert busy.json()["error"]["code"] == "upstream_busy"
    assert ask().status_code == 200, "the credential was not cooled down for our own saturation"
