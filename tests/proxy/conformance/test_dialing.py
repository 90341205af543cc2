"""Dialing: several addresses per host, proxies from the environment, TLS checks."""

import asyncio
import ssl
import time
from pathlib import Path

import httpx
import pytest

from tests.proxy.conformance.certs import ThrowawayCA
from tests.proxy.conformance.conftest import Factory, call, request, run
from tests.proxy.conformance.wire import RawServer, RecordingProxy, dead_address, keep_answering

PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
)


@pytest.fixture(autouse=True)
def _no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


# --- several addresses ----------------------------------------------------------------------


def test_a_dead_address_is_skipped_quickly_for_the_next_one(client: Factory) -> None:
    async def main() -> None:
        async with RawServer(keep_answering) as server, dead_address(port=server.port):
            # DNS answers the dead address first; its packets vanish (no refusal comes back).
            transport = client(resolve={"upstream.test": ["127.0.0.2", "127.0.0.1"]})
            started = time.monotonic()
            answer = await call(
                transport, request(f"http://upstream.test:{server.port}/v1/x", connect=10.0)
            )
            elapsed = time.monotonic() - started
            await transport.aclose()
        assert answer.body == b'{"reply_to":"A"}'
        # RFC 8305: the next attempt starts 250 ms after the previous one, not after its timeout.
        assert elapsed < 3.0, f"waited {elapsed:.2f} s on a dead address (connect timeout 10 s)"

    run(main())


def test_a_refused_address_is_skipped_for_the_next_one(client: Factory) -> None:
    async def main() -> None:
        async with RawServer(keep_answering) as server:
            transport = client(resolve={"upstream.test": ["127.0.0.3", "127.0.0.1"]})
            answer = await call(transport, request(f"http://upstream.test:{server.port}/v1/x"))
            await transport.aclose()
        assert answer.body == b'{"reply_to":"A"}'

    run(main())


def test_no_address_answering_is_a_connect_error(client: Factory) -> None:
    async def main() -> None:
        async with RawServer(keep_answering) as server:
            port = server.port
        transport = client(resolve={"upstream.test": ["127.0.0.3", "127.0.0.1"]})
        with pytest.raises(httpx.ConnectError):
            await call(transport, request(f"http://upstream.test:{port}/v1/x"))
        await transport.aclose()

    run(main())


# --- proxies --------------------------------------------------------------------------------


def test_https_goes_through_a_connect_tunnel_from_https_proxy(
    client: Factory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ca = ThrowawayCA(tmp_path)

    async def main() -> None:
        async with (
            RawServer(keep_answering, tls=ca.server_context("localhost")) as server,
            RecordingProxy(credentials=b"ops:s3cret") as proxy,
        ):
            monkeypatch.setenv("HTTPS_PROXY", proxy.url())
            transport = client(ca_file=str(ca.ca_file))
            answer = await call(transport, request(server.url(host="localhost")))
            await call(transport, request(server.url(host="localhost")))
            await transport.aclose()
        assert answer.body == b'{"reply_to":"A"}'
        assert proxy.tunnels == [f"localhost:{server.port}".encode()], "one tunnel, kept alive"
        assert proxy.refused == 0, "the proxy URL's credentials were sent"

    run(main())


def test_http_goes_through_http_proxy_in_absolute_form(
    client: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def main() -> None:
        async with RawServer(keep_answering) as server, RecordingProxy(b"ops:s3cret") as proxy:
            monkeypatch.setenv("HTTP_PROXY", proxy.url())
            transport = client()
            answer = await call(transport, request(server.url(host="localhost")))
            await transport.aclose()
        assert answer.body == b'{"reply_to":"A"}'
        assert proxy.forwarded == [
            f"POST http://localhost:{server.port}/v1/chat/completions HTTP/1.1".encode()
        ]
        assert proxy.refused == 0
        assert server.requests[0].header(b"proxy-authorization") is None

    run(main())


def test_no_proxy_hosts_are_reached_directly(
    client: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def main() -> None:
        async with RawServer(keep_answering) as server, RecordingProxy() as proxy:
            monkeypatch.setenv("HTTP_PROXY", proxy.url())
            monkeypatch.setenv("NO_PROXY", "example.com,localhost")
            transport = client()
            answer = await call(transport, request(server.url(host="localhost")))
            await transport.aclose()
        assert answer.body == b'{"reply_to":"A"}'
        assert proxy.forwarded == []
        assert proxy.tunnels == []

    run(main())


def test_a_proxy_refusing_the_tunnel_is_a_connect_error(
    client: Factory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ca = ThrowawayCA(tmp_path)

    async def main() -> None:
        async with (
            RawServer(keep_answering, tls=ca.server_context("localhost")) as server,
            RecordingProxy(credentials=b"ops:s3cret") as proxy,
        ):
            monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")  # no credentials
            transport = client(ca_file=str(ca.ca_file))
            with pytest.raises(httpx.TransportError):
                await call(transport, request(server.url(host="localhost")))
            await transport.aclose()
        assert proxy.refused == 1
        assert server.requests == []

    run(main())


# --- TLS ------------------------------------------------------------------------------------


def sni_recording(context: ssl.SSLContext, names: list[str | None]) -> ssl.SSLContext:
    def remember(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        names.append(name)

    context.sni_callback = remember
    return context


def test_tls_is_verified_carries_sni_and_stays_alive(client: Factory, tmp_path: Path) -> None:
    ca = ThrowawayCA(tmp_path)
    names: list[str | None] = []

    async def main() -> None:
        tls = sni_recording(ca.server_context("localhost"), names)
        async with RawServer(keep_answering, tls=tls) as server:
            transport = client(ca_file=str(ca.ca_file))
            for _ in range(2):
                answer = await call(transport, request(server.url(host="localhost")))
                assert answer.body == b'{"reply_to":"A"}'
            await transport.aclose()
        assert names == ["localhost"], "SNI names the host; one handshake for two calls"
        assert server.connections == 1

    run(main())


def test_a_certificate_from_an_unknown_authority_is_refused(
    client: Factory, tmp_path: Path
) -> None:
    stranger = ThrowawayCA(tmp_path, name="Impostor root")
    trusted = ThrowawayCA(tmp_path)

    async def main() -> None:
        async with RawServer(keep_answering, tls=stranger.server_context("localhost")) as server:
            transport = client(ca_file=str(trusted.ca_file))
            with pytest.raises(httpx.ConnectError):
                await call(transport, request(server.url(host="localhost")))
            await transport.aclose()
        assert server.requests == [], "nothing was sent to an unverified peer"

    run(main())


def test_a_certificate_for_another_host_is_refused(client: Factory, tmp_path: Path) -> None:
    ca = ThrowawayCA(tmp_path)

    async def main() -> None:
        async with RawServer(keep_answering, tls=ca.server_context("other.test")) as server:
            transport = client(ca_file=str(ca.ca_file))
            with pytest.raises(httpx.ConnectError):
                await call(transport, request(server.url(host="localhost")))
            await transport.aclose()
        assert server.requests == []

    run(main())


def test_a_connect_timeout_is_a_connect_timeout(client: Factory) -> None:
    async def main() -> None:
        async with RawServer(keep_answering) as server, dead_address(port=server.port):
            transport = client(resolve={"upstream.test": ["127.0.0.2"]})
            with pytest.raises(httpx.ConnectTimeout):
                await call(
                    transport, request(f"http://upstream.test:{server.port}/v1/x", connect=0.5)
                )
            await transport.aclose()

    run(main())


def test_dialing_runs_concurrently(client: Factory) -> None:
    """A burst of callers to one host: each opens its own connection, none waits on another."""

    async def main() -> None:
        async with RawServer(keep_answering) as server:
            transport = client()
            answers = await asyncio.gather(
                *(call(transport, request(server.url(host="localhost"))) for _ in range(20))
            )
            await transport.aclose()
        assert [answer.status for answer in answers] == [200] * 20

    run(main())
