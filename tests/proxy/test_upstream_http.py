"""Our upstream transport's own workings, beyond what tests/proxy/conformance/ sees on the wire."""

import asyncio
import socket

import httpx
import pytest

from proxy.upstream import connection as upstream_connection
from proxy.upstream.dial import Dialer
from proxy.upstream.transport import TransportOptions, UpstreamTransport
from tests.proxy.conformance.conftest import call, request, run
from tests.proxy.conformance.wire import Peer, RawServer, dead_address, keep_answering, response


def test_the_request_goes_out_as_written() -> None:
    async def main() -> None:
        async with RawServer(keep_answering) as server:
            transport = UpstreamTransport()
            built = request(server.url() + "?x=1", body=b'{"a":1}')
            built.headers = [(b"authorization", b"Bearer sk-test"), (b"x-tenant", b"A")]
            await call(transport, built)
            await transport.aclose()
        seen = server.requests[0]
        assert seen.request_line == b"POST /v1/chat/completions?x=1 HTTP/1.1"
        assert seen.header(b"host") == f"127.0.0.1:{server.port}".encode()
        assert seen.header(b"content-length") == b"7"
        assert seen.header(b"authorization") == b"Bearer sk-test"
        assert seen.header(b"accept-encoding") == b"identity", "added when the adapter sent none"
        assert seen.body == b'{"a":1}'

    run(main())


def test_a_header_value_with_a_line_break_is_refused_before_sending() -> None:
    async def main() -> None:
        async with RawServer(keep_answering) as server:
            bad = request(server.url())
            bad.headers[0] = (b"authorization", b"Bearer x\r\nX-Injected: 1")
            with pytest.raises(httpx.LocalProtocolError, match="line break"):
                await UpstreamTransport().send(bad)
        assert server.connections == 0

    run(main())


def test_head_requests_are_refused() -> None:
    async def main() -> None:
        with pytest.raises(httpx.LocalProtocolError, match="HEAD"):
            await UpstreamTransport().send(request("http://127.0.0.1:9/x", method="HEAD"))

    run(main())


def test_a_slow_reader_pauses_the_upstream_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream_connection, "HIGH_WATER", 1024)
    total = 512 * 1024

    async def script(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
        for _ in range(total // 4096):
            await peer.send(b"x" * 4096)

    async def main() -> None:
        async with RawServer(script) as server:
            transport = UpstreamTransport()
            response = await transport.send(request(server.url()))
            await asyncio.sleep(0.2)  # nobody reads: the connection stops reading
            conn = response.stream._conn
            assert conn.paused
            assert conn.buffered < 256 * 1024, "buffered bytes stay bounded"
            received = 0
            async for chunk in response.stream:
                received += len(chunk)
            assert received == total
            await response.aclose()
            await transport.aclose()

    run(main())


def test_a_burst_of_new_connections_looks_the_host_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    lookups: list[str] = []
    original = Dialer._lookup

    async def counted(self: Dialer, host: str, port: int) -> list[tuple[object, ...]]:
        lookups.append(host)
        return await original(self, host, port)

    monkeypatch.setattr(Dialer, "_lookup", counted)

    async def script(peer: Peer) -> None:
        seen = await peer.read_request()
        await asyncio.sleep(0.05)  # all twenty in flight at once: twenty connections
        await peer.send(response(b"%s" % seen.body))

    async def main() -> None:
        async with RawServer(script) as server:
            transport = UpstreamTransport()
            answers = await asyncio.gather(
                *(call(transport, request(server.url(host="localhost"))) for _ in range(20))
            )
            await transport.aclose()
        assert [answer.status for answer in answers] == [200] * 20
        assert server.connections == 20

    run(main())
    assert lookups == ["localhost"]


def test_a_failed_address_leaves_the_dns_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    async def two_addresses(self: Dialer, host: str, port: int) -> list[tuple[object, ...]]:
        infos: list[tuple[object, ...]] = [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
            for address in ("127.0.0.2", "127.0.0.1")
        ]
        self._addresses[(host, port)] = (float("inf"), list(infos))
        return infos

    monkeypatch.setattr(Dialer, "_lookup", two_addresses)

    async def main() -> None:
        async with RawServer(keep_answering) as server, dead_address(port=server.port):
            transport = UpstreamTransport()
            url = f"http://upstream.test:{server.port}/v1/x"
            await call(transport, request(url))
            cached = transport._dialer._addresses[("upstream.test", server.port)][1]
            assert [info[4][0] for info in cached] == ["127.0.0.1"], "the dead one is gone"
            await transport.aclose()

    run(main())


def test_an_upstream_keep_alive_timeout_shorter_than_ours_is_respected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(upstream_connection, "KEEPALIVE_MARGIN", 0.0)

    async def script(peer: Peer) -> None:
        while True:
            await peer.read_request()
            await peer.send(response(b"{}", headers=b"Keep-Alive: timeout=1, max=100\r\n"))

    async def main() -> None:
        async with RawServer(script) as server:
            transport = UpstreamTransport()
            await call(transport, request(server.url()))
            await call(transport, request(server.url()))  # within the upstream's second: reused
            await asyncio.sleep(1.1)
            await call(transport, request(server.url()))  # past it: a new connection
            await transport.aclose()
        assert server.connections == 2

    run(main())


def test_lost_connections_leave_the_pool_and_free_their_place() -> None:
    async def script(peer: Peer) -> None:
        seen = await peer.read_request()
        await peer.send(response(seen.body, headers=b"Connection: close\r\n"))

    async def main() -> None:
        async with RawServer(script) as server:
            transport = UpstreamTransport(TransportOptions(max_connections_per_origin=1))
            for _ in range(3):  # each call's connection closes: the cap of one never blocks
                assert (await call(transport, request(server.url(), pool=1.0))).status == 200
            await asyncio.sleep(0.05)
            pool = next(iter(transport._pools.values()))
            assert (pool.open, pool.idle) == (0, [])
            await transport.aclose()

    run(main())


def test_connect_errors_name_the_host() -> None:
    async def main() -> None:
        async with RawServer(keep_answering) as server:
            port = server.port
        with pytest.raises(httpx.ConnectError, match=f"127.0.0.1:{port}"):
            await UpstreamTransport().send(request(f"http://127.0.0.1:{port}/x"))

    run(main())


def test_an_unsupported_proxy_url_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "socks5://127.0.0.1:1080")
    with pytest.raises(ValueError, match="plain http://"):
        UpstreamTransport()
