"""Exactly one usage event for every request that passed authentication, on every exit path:
success, a gateway error, any other exception (rendering the answer included), the client
leaving, cancellation at shutdown. Refusals before authentication are a metric, not events.

Each case sends its own x-request-id, then a sentinel request: the metering queue is first in,
first out, so once the sentinel's event is in, any second event of the case would be too.
"""

import itertools
import socket
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from billing.events import UsageEvent
from billing.usage import Usage
from proxy.gateway.routes import chat as chat_route
from proxy.providers.openai import OpenAIAdapter
from tests.conftest import LiveServer
from tests.fakes.server import FakeServer, Scripted
from tests.proxy.conftest import EventLog

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "Say hello"}]
_ids = itertools.count()


def new_id(case: str) -> str:
    return f"one-event-{case}-{time.time_ns()}-{next(_ids)}"


@pytest.fixture
def api(gateway: LiveServer, api_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=gateway.url, headers={"authorization": f"Bearer {api_key}"}, timeout=30
    ) as client:
        yield client


def only_event(events: EventLog, api: httpx.Client, request_id: str) -> UsageEvent:
    """The request's event, after proving no second one followed it."""
    event = events.for_request(request_id)
    sentinel = new_id("sentinel")
    api.post("/v1/chat/completions", content=b"{", headers={"x-request-id": sentinel})
    events.for_request(sentinel)
    assert [e.request_id for e in events.events].count(request_id) == 1
    return event


def chat(api: httpx.Client, request_id: str, **body: Any) -> httpx.Response:
    return api.post(
        "/v1/chat/completions",
        json={"model": "GPT-4o", "messages": HELLO, **body},
        headers={"x-request-id": request_id},
    )


def streamed_chat(api: httpx.Client, request_id: str) -> AbstractContextManager[httpx.Response]:
    return api.stream(
        "POST",
        "/v1/chat/completions",
        json={"model": "GPT-4o", "messages": HELLO, "stream": True},
        headers={"x-request-id": request_id},
    )


def test_success_whole_and_streamed(
    api: httpx.Client, fake_openai: FakeServer, usage_events: EventLog
) -> None:
    whole, streamed = new_id("whole"), new_id("streamed")
    assert chat(api, whole).status_code == 200
    with streamed_chat(api, streamed) as response:
        assert response.status_code == 200
        assert b"data: [DONE]" in response.read()
    for request_id, stream in ((whole, False), (streamed, True)):
        event = only_event(usage_events, api, request_id)
        assert (event.status, event.error_code, event.stream) == (200, None, stream)
        assert event.usage.output > 0
        assert event.cost > 0


@pytest.mark.parametrize(
    ("case", "body", "status", "code", "model"),
    [
        ("bad-json", b"{", 400, "invalid_json", ""),
        ("bad-field", b'{"model": "GPT-4o", "messages": "hi"}', 400, None, "GPT-4o"),
        (
            "no-model",
            b'{"model": "GPT-9", "messages": [{"role": "user", "content": "hi"}]}',
            404,
            "model_not_found",
            "GPT-9",
        ),
    ],
)
def test_a_request_refused_after_authentication(
    api: httpx.Client,
    usage_events: EventLog,
    case: str,
    body: bytes,
    status: int,
    code: str | None,
    model: str,
) -> None:
    request_id = new_id(case)
    response = api.post("/v1/chat/completions", content=body, headers={"x-request-id": request_id})
    assert response.status_code == status
    event = only_event(usage_events, api, request_id)
    assert event.status == status
    assert event.error_code == (code or response.json()["error"]["code"])
    assert (event.cost, event.usage, event.attempts, event.attempt_log) == (0, Usage(), 0, ())
    if case == "no-model":
        assert (event.card_id, event.model, event.provider) == (None, model, None)


def test_the_upstream_refusing_or_failing(
    api: httpx.Client, fake_openai: FakeServer, usage_events: EventLog
) -> None:
    refused, failed = new_id("refused"), new_id("failed")
    fake_openai.app.script.append(
        Scripted(status=400, body={"error": {"message": "bad", "type": "invalid_request_error"}})
    )
    assert chat(api, refused).status_code == 400
    boom = Scripted(status=500, body={"error": {"message": "boom"}})
    fake_openai.app.script.extend([boom, boom])  # one credential: tried twice
    assert chat(api, failed).status_code >= 500
    one = only_event(usage_events, api, refused)
    assert (one.status, one.attempts, one.cost) == (400, 1, 0)
    # The upstream's refusal is the answer the client got: that try is not a failover.
    assert [(a.status, a.error_code) for a in one.attempt_log] == [(400, None)]
    two = only_event(usage_events, api, failed)
    assert (two.status, two.attempts, two.cost) == (502, 2, 0)


def test_a_stream_that_breaks_off(
    api: httpx.Client, fake_openai: FakeServer, usage_events: EventLog
) -> None:
    request_id = new_id("cut")
    fake_openai.app.script.append(Scripted(cut_after_chunks=2))
    response = chat(api, request_id, stream=True)
    assert response.status_code == 200
    event = only_event(usage_events, api, request_id)
    assert (event.status, event.error_code) == (200, "upstream_error")
    assert event.usage.output >= 1  # what was relayed is billed


def test_any_other_exception(
    api: httpx.Client,
    fake_openai: FakeServer,
    usage_events: EventLog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a translation bug")

    monkeypatch.setattr(OpenAIAdapter, "chat_response", broken)
    request_id = new_id("bug")
    assert chat(api, request_id).status_code == 500
    event = only_event(usage_events, api, request_id)
    assert (event.status, event.error_code, event.attempts) == (500, "internal_error", 1)


def test_an_exception_while_rendering_keeps_the_usage(
    api: httpx.Client,
    fake_openai: FakeServer,
    usage_events: EventLog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_args: Any) -> Any:
        raise RuntimeError("a rendering bug")

    monkeypatch.setattr(chat_route, "_priced_completion", broken)
    request_id = new_id("render")
    assert chat(api, request_id).status_code == 500
    event = only_event(usage_events, api, request_id)
    assert (event.status, event.error_code) == (500, "internal_error")
    assert event.usage.output > 0  # the upstream did the work: it is billed
    assert event.cost > 0


def test_the_client_leaving_mid_stream(
    api: httpx.Client, fake_openai: FakeServer, usage_events: EventLog
) -> None:
    request_id = new_id("left")
    fake_openai.app.script.append(Scripted(chunk_delay=0.2))
    with streamed_chat(api, request_id) as response:
        for chunk in response.iter_bytes():
            if chunk.count(b"data: ") >= 1:
                break
    event = only_event(usage_events, api, request_id)
    assert (event.error_code, event.client_disconnected) == ("client_disconnected", True)
    assert event.cost > 0


def test_the_client_leaving_while_sending_its_body(
    gateway: LiveServer, api: httpx.Client, api_key: str, usage_events: EventLog
) -> None:
    request_id = new_id("half-body")
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"authorization: Bearer {api_key}\r\nx-request-id: {request_id}\r\n"
        "content-type: application/json\r\ncontent-length: 1000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
        sock.sendall(head.encode() + b'{"model": "GPT-4o", ')
        time.sleep(0.3)  # the gateway is waiting for the rest
    event = only_event(usage_events, api, request_id)
    assert (event.status, event.error_code) == (499, "client_disconnected")
    assert (event.client_disconnected, event.cost) == (True, 0)


def test_cancellation_at_shutdown(
    gateway: LiveServer, api: httpx.Client, fake_openai: FakeServer, usage_events: EventLog
) -> None:
    request_id = new_id("shutdown")
    fake_openai.app.script.append(Scripted(chunk_delay=0.3))  # about 4 s in all
    gateway.server.config.timeout_graceful_shutdown = 1
    with streamed_chat(api, request_id) as response:
        assert response.status_code == 200
        chunks = response.iter_bytes()
        next(chunks)
        gateway.server.should_exit = True  # uvicorn cancels the request after 1 s
        with pytest.raises(httpx.HTTPError):  # the stream is cut off
            for _ in chunks:
                pass
    gateway.thread.join(15)
    assert not gateway.thread.is_alive()
    event = usage_events.for_request(request_id)  # delivered by the runtime's stop
    assert (event.status, event.error_code, event.stream) == (200, "cancelled", True)
    assert event.usage.output >= 1  # what was relayed is billed
    assert [e.request_id for e in usage_events.events].count(request_id) == 1


def refusals(code: str) -> float:
    value = REGISTRY.get_sample_value(
        "tokenbyte_requests_refused_before_auth_total", {"code": code}
    )
    return value or 0.0


def test_refusals_before_authentication_are_counted_not_metered(
    gateway: LiveServer, api: httpx.Client, usage_events: EventLog
) -> None:
    before = refusals("invalid_api_key")
    ids = [new_id("no-key"), new_id("not-ours"), new_id("unknown")]
    keys = [None, "sk-someone-elses", "tb-" + "x" * 43]
    for request_id, key in zip(ids, keys, strict=True):
        headers = {"x-request-id": request_id}
        if key is not None:
            headers["authorization"] = f"Bearer {key}"
        response = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": "GPT-4o", "messages": HELLO},
            headers=headers,
        )
        assert response.status_code == 401
    assert refusals("invalid_api_key") == before + 3
    sentinel = new_id("sentinel")
    api.post("/v1/chat/completions", content=b"{", headers={"x-request-id": sentinel})
    usage_events.for_request(sentinel)
    assert not [e for e in usage_events.events if e.request_id in ids]
