"""The front door is bounded: each attack is refused within its bound, on a real server over real
sockets, while a normal request on another connection is served meanwhile."""

import time
from collections.abc import Iterator
from http import HTTPStatus

import httpx
import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from tests.conftest import LiveServer
from tests.frontdoor.conftest import (
    BODY_TIMEOUT,
    HEADER_TIMEOUT,
    KEEP_ALIVE_TIMEOUT,
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    assert_served,
)
from tests.frontdoor.raw_http import RawConnection, RawResponse

# How late past its bound a refusal may come on a loaded machine; not a speed check.
SLACK = 10.0


def assert_refused(response: RawResponse, status: int, code: str) -> dict[str, object]:
    """The refusal is in the API's error shape and ends the connection."""
    assert response.status == status
    assert response.headers["content-type"] == "application/json"
    assert response.headers["connection"] == "close"
    assert response.headers["x-request-id"].startswith("req_")
    error = response.json()["error"]
    assert isinstance(error, dict)
    assert set(error) == {"message", "type", "code", "param"}
    assert error["code"] == code
    return error


def test_a_64_mib_header_gets_431_while_others_are_served(server: LiveServer) -> None:
    head = b"GET /v1/models HTTP/1.1\r\nHost: gateway\r\nX-Huge: "
    with RawConnection(server.url) as attacker:
        sender = attacker.send_in_background(head + b"a" * (64 << 20) + b"\r\n\r\n")
        assert_served(server)
        response = attacker.read_response()
        assert attacker.closed_by_server()
    sender.join(SLACK)
    error = assert_refused(
        response, HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large"
    )
    assert f"{MAX_HEADER_BYTES} bytes" in str(error["message"])
    assert_served(server)


def test_100k_headers_get_431_in_anthropics_shape_on_v1_messages(server: LiveServer) -> None:
    headers = b"".join(b"X-Header-%d: v\r\n" % n for n in range(100_000))
    with RawConnection(server.url) as attacker:
        sender = attacker.send_in_background(
            b"POST /v1/messages HTTP/1.1\r\nHost: gateway\r\n" + headers + b"\r\n"
        )
        assert_served(server)
        response = attacker.read_response()
        assert attacker.closed_by_server()
    sender.join(SLACK)
    assert response.status == HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
    assert response.headers["connection"] == "close"
    body = response.json()
    assert body["type"] == "error"
    assert body["error"] == {
        "type": "invalid_request_error",
        "message": f"The request's headers are over the limit of {MAX_HEADERS} headers and "
        f"{MAX_HEADER_BYTES} bytes with the request line.",
    }
    assert_served(server)


def request_with(headers: list[bytes]) -> bytes:
    return b"GET /v1/models HTTP/1.1\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


def test_heads_up_to_the_limits_are_served_and_one_past_them_refused(server: LiveServer) -> None:
    host = b"Host: gateway"
    at_count = [host, *(b"X-N-%d: v" % n for n in range(MAX_HEADERS - 1))]
    padding = MAX_HEADER_BYTES - 1024
    with RawConnection(server.url) as client:
        client.send(request_with(at_count))
        assert client.read_response().status == HTTPStatus.OK
        client.send(request_with([host, b"X-Pad: " + b"p" * padding]))  # same connection
        assert client.read_response().status == HTTPStatus.OK
    with RawConnection(server.url) as client:
        client.send(request_with([*at_count, b"X-One-Too-Many: v"]))
        assert_refused(client.read_response(), 431, "headers_too_large")
    with RawConnection(server.url) as client:
        client.send(request_with([host, b"X-Pad: " + b"p" * MAX_HEADER_BYTES]))
        assert_refused(client.read_response(), 431, "headers_too_large")


def test_a_slowloris_client_gets_408_at_the_header_timeout(server: LiveServer) -> None:
    with RawConnection(server.url) as loris:
        started = time.monotonic()
        loris.send(b"GET /v1/models HTTP/1.1\r\nHost: gateway\r\n")
        loris.trickle([b"X-Slow-%d: v\r\n" % n for n in range(60)], interval=1.0)
        assert_served(server)
        response = loris.read_response()
        waited = time.monotonic() - started
        assert loris.closed_by_server()
    error = assert_refused(response, HTTPStatus.REQUEST_TIMEOUT, "request_timeout")
    assert "headers" in str(error["message"])
    assert HEADER_TIMEOUT - 0.1 <= waited < HEADER_TIMEOUT + SLACK
    assert_served(server)


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/v1/chat/completions", b"application/json"),  # the gateway
        ("/accounts/login/", b"application/x-www-form-urlencoded"),  # Django
    ],
)
def test_a_body_at_one_byte_a_second_gets_408_at_the_body_timeout(
    server: LiveServer, api_key: str, path: str, content_type: bytes
) -> None:
    body = b'{"model": "GPT-4o", "messages": [{"role": "user", "content": "hi"}]}'
    head = (
        b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
        b"Content-Type: %s\r\nContent-Length: %d\r\n\r\n"
        % (path.encode(), api_key.encode(), content_type, len(body))
    )
    with RawConnection(server.url) as slow:
        slow.send(head)
        started = time.monotonic()
        slow.trickle([bytes([byte]) for byte in body], interval=1.0)
        assert_served(server)
        response = slow.read_response()
        waited = time.monotonic() - started
        assert slow.closed_by_server()
    error = assert_refused(response, HTTPStatus.REQUEST_TIMEOUT, "request_timeout")
    assert "body" in str(error["message"])
    assert BODY_TIMEOUT - 0.1 <= waited < BODY_TIMEOUT + SLACK
    assert_served(server)


def test_a_request_arriving_in_pieces_within_its_bounds_is_served(
    server: LiveServer, api_key: str
) -> None:
    body = b'{"model": "No Such Model", "messages": [{"role": "user", "content": "hi"}]}'
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        % (api_key.encode(), len(body))
    )
    pause = min(HEADER_TIMEOUT, BODY_TIMEOUT) / 8
    with RawConnection(server.url) as client:
        for piece in (head[:20], head[20:60], head[60:], body[:10], body[10:30], body[30:]):
            client.send(piece)
            time.sleep(pause)
        response = client.read_response()
        # The gateway read the whole body: it names the model it did not find.
        assert response.status == HTTPStatus.NOT_FOUND
        assert response.json()["error"]["code"] == "model_not_found"
        client.send(request_with([b"Host: gateway"]))  # the connection is still good
        assert client.read_response().status == HTTPStatus.OK


def test_a_connection_that_sends_nothing_is_closed_at_the_keep_alive_timeout(
    server: LiveServer,
) -> None:
    with RawConnection(server.url, timeout=KEEP_ALIVE_TIMEOUT + SLACK) as idle:
        started = time.monotonic()
        assert idle.closed_by_server()
        assert time.monotonic() - started >= KEEP_ALIVE_TIMEOUT - 0.1


def test_an_idle_kept_alive_connection_is_closed_at_the_keep_alive_timeout(
    server: LiveServer,
) -> None:
    with RawConnection(server.url, timeout=KEEP_ALIVE_TIMEOUT + SLACK) as client:
        client.send(request_with([b"Host: gateway"]))
        assert client.read_response().status == HTTPStatus.OK
        answered = time.monotonic()
        assert client.closed_by_server()
        assert time.monotonic() - answered >= KEEP_ALIVE_TIMEOUT - 0.1


MAX_CONCURRENCY = 2


@pytest.fixture
def crowded_server(small_bounds: SettingsWrapper, catalog: None) -> Iterator[LiveServer]:
    small_bounds.TOKENBYTE_MAX_CONCURRENCY = MAX_CONCURRENCY
    small_bounds.TOKENBYTE_BODY_TIMEOUT = 60.0  # the held requests stay held for the test
    with LiveServer() as live:
        yield live


def test_past_the_concurrency_limit_requests_get_503_with_retry_after(
    crowded_server: LiveServer,
) -> None:
    holders = [RawConnection(crowded_server.url) for _ in range(MAX_CONCURRENCY)]
    try:
        for holder in holders:  # console requests, in flight while their bodies arrive
            holder.send(
                b"POST /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n\r\nlogin"
            )
        deadline = time.monotonic() + SLACK
        while crowded_server.app.in_flight < MAX_CONCURRENCY:
            assert time.monotonic() < deadline, "the held requests never reached the app"
            time.sleep(0.02)
        for path in ("/v1/models", "/accounts/login/"):  # the API and the console alike
            refused = httpx.get(f"{crowded_server.url}{path}", timeout=10)
            assert refused.status_code == HTTPStatus.SERVICE_UNAVAILABLE
            assert refused.headers["retry-after"] == "1"
            assert refused.headers["x-request-id"].startswith("req_")
            assert refused.json()["error"]["code"] == "server_overloaded"
            assert f"{MAX_CONCURRENCY} requests" in refused.json()["error"]["message"]
        anthropic = httpx.post(f"{crowded_server.url}/v1/messages", json={}, timeout=10)
        assert anthropic.status_code == HTTPStatus.SERVICE_UNAVAILABLE
        assert anthropic.json()["error"]["type"] == "overloaded_error"
        holders[0].send(b"=x&y=")  # one held request completes, freeing its place
        assert holders[0].read_response().status == HTTPStatus.FORBIDDEN  # no CSRF token
        while crowded_server.app.in_flight >= MAX_CONCURRENCY:
            assert time.monotonic() < deadline, "the finished request kept its place"
            time.sleep(0.02)
        assert_served(crowded_server)
    finally:
        for holder in holders:
            holder.sock.close()
