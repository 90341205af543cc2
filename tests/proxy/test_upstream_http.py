"""The upstream HTTP/1.1 transport against raw servers on loopback that write exact bytes."""

import asyncio
import contextlib
import datetime
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from proxy import upstream_http
from proxy.upstream_http import UpstreamRequest, UpstreamTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
TIMEOUTS = {"connect": 2.0, "read": 2.0, "write": 2.0, "pool": 2.0}


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return head, await reader.readexactly(length)


def request(port: int, body: bytes = b"{}", **timeouts: float) -> UpstreamRequest:
    built = UpstreamRequest(
        "POST",
        httpx.URL(f"http://127.0.0.1:{port}/v1/chat/completions?x=1"),
        [(b"authorization", b"Bearer sk-test"), (b"content-type", b"application/json")],
        body,
    )
    built.extensions["timeout"] = {**TIMEOUTS, **timeouts}
    return built


async def call(
    transport: UpstreamTransport, req: UpstreamRequest
) -> tuple[int, bytes, list[bytes]]:
    response = await transport.send(req)
    chunks = [chunk async for chunk in response.stream]
    await response.aclose()
    return response.status_code, b"".join(chunks), chunks


def serve(handler: Handler, test: Callable[[int, list[int]], Awaitable[None]]) -> list[int]:
    """Run `test(port, accepted)` against a server; `accepted` counts connections."""
    accepted: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        try:
            await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            await test(port, accepted)

    asyncio.run(main())
    return accepted


def test_sends_the_request_as_written_and_reuses_the_connection() -> None:
    seen: list[tuple[bytes, bytes]] = []
    ports: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            seen.append(await read_request(reader))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Request-Id: up-1\r\n\r\nhello")
            await writer.drain()

    async def test(port: int, accepted: list[int]) -> None:
        ports.append(port)
        transport = UpstreamTransport()
        for _ in range(3):
            response = await transport.send(request(port, b'{"a":1}'))
            assert response.status_code == 200
            assert response.headers["x-request-id"] == "up-1"
            assert await response.aread() == b"hello"
            await response.aclose()
        await transport.aclose()

    accepted = serve(handler, test)
    assert len(accepted) == 1, "three calls, one kept-alive connection"
    head, body = seen[0]
    assert head.startswith(b"POST /v1/chat/completions?x=1 HTTP/1.1\r\n")
    assert f"\r\nhost: 127.0.0.1:{ports[0]}\r\n".encode() in head
    assert b"\r\nauthorization: Bearer sk-test\r\n" in head
    assert b"\r\ncontent-length: 7\r\n" in head
    assert body == b'{"a":1}'


def test_chunked_bodies_arrive_as_sent_and_decoded() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for event in (b"data: 1\n\n", b"data: 2\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
            await asyncio.sleep(0.05)  # apart, as a stream's events are
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await reader.read()

    async def test(port: int, accepted: list[int]) -> None:
        transport = UpstreamTransport()
        status, body, chunks = await call(transport, request(port))
        assert (status, body) == (200, b"data: 1\n\ndata: 2\n\n")
        assert chunks == [b"data: 1\n\n", b"data: 2\n\n"], "relayed chunk by chunk"
        assert sum(map(len, transport._idle.values())) == 1, "complete: kept for reuse"
        await transport.aclose()

    serve(handler, test)


def test_a_body_without_length_ends_with_the_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart one, ")
        await writer.drain()
        writer.write(b"part two")
        await writer.drain()

    async def test(port: int, accepted: list[int]) -> None:
        transport = UpstreamTransport()
        assert (await call(transport, request(port)))[:2] == (200, b"part one, part two")
        assert not any(transport._idle.values()), "a closed connection is not pooled"
        await transport.aclose()

    serve(handler, test)


def test_a_kept_alive_connection_closed_by_the_upstream_is_retried_once_on_a_new_one() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        # The next request on this connection is read and dropped without an answer, as a
        # server whose keep-alive timer fired at that moment would.
        await read_request(reader)

    async def test(port: int, accepted: list[int]) -> None:
        transport = UpstreamTransport()
        assert (await call(transport, request(port)))[:2] == (200, b"ok")
        assert (await call(transport, request(port)))[:2] == (200, b"ok")
        assert len(accepted) == 2
        await transport.aclose()

    serve(handler, test)


def test_a_fresh_connection_dropped_before_an_answer_is_a_read_error_not_retried() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async def test(port: int, accepted: list[int]) -> None:
        transport = UpstreamTransport()
        with pytest.raises(httpx.ReadError, match="closed the connection"):
            await transport.send(request(port))
        assert len(accepted) == 1, "the upstream may have acted on it: no second copy"
        await transport.aclose()

    serve(handler, test)


def test_silence_past_the_read_timeout_raises_read_timeout_and_drops_the_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await reader.read()  # then nothing

    async def test(port: int, accepted: list[int]) -> None:
        transport = UpstreamTransport()
        response = await transport.send(request(port, read=0.2))
        chunks = aiter(response.stream)
        assert await anext(chunks) == b"first"
        with pytest.raises(httpx.ReadTimeout):
            await anext(chunks)
        await response.aclose()
        assert not any(transport._idle.values())
        await transport.aclose()

    serve(handler, test)


def test_connect_failures_are_httpx_connect_errors() -> None:
    async def main() -> None:
        transport = UpstreamTransport()
        probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = probe.sockets[0].getsockname()[1]
        probe.close()
        await probe.wait_closed()
        with pytest.raises(httpx.ConnectError, match=f"127.0.0.1:{port}"):
            await transport.send(request(port))

    asyncio.run(main())


def test_a_malformed_response_is_a_protocol_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 two hundred\r\n\r\n")
        await writer.drain()
        await reader.read()

    async def test(port: int, accepted: list[int]) -> None:
        with pytest.raises(httpx.RemoteProtocolError, match="Malformed"):
            await UpstreamTransport().send(request(port))

    serve(handler, test)


def test_a_header_value_with_a_line_break_is_refused_before_sending() -> None:
    async def test(port: int, accepted: list[int]) -> None:
        bad = request(port)
        bad.headers[0] = (b"authorization", b"Bearer x\r\nX-Injected: 1")
        with pytest.raises(httpx.LocalProtocolError, match="line break"):
            await UpstreamTransport().send(bad)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise AssertionError("nothing may be sent")

    assert serve(handler, test) == []


def test_an_unread_response_closes_its_connection_instead_of_pooling_it() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
            await writer.drain()

    async def test(port: int, accepted: list[int]) -> None:
        transport = UpstreamTransport()
        response = await transport.send(request(port))
        await response.aclose()  # the client left: the rest of this body must not leak
        assert (await transport.send(request(port))).status_code == 200
        assert len(accepted) == 2
        await transport.aclose()

    serve(handler, test)


def test_a_slow_reader_pauses_the_upstream_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream_http, "HIGH_WATER", 1024)
    total = 512 * 1024

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
        for _ in range(total // 4096):
            writer.write(b"x" * 4096)
            await writer.drain()

    async def test(port: int, accepted: list[int]) -> None:
        transport = UpstreamTransport()
        response = await transport.send(request(port))
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

    serve(handler, test)


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for "localhost" and its key, as a test CA would issue."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_https_upstreams_are_verified_and_kept_alive(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    accepted: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            while True:
                await read_request(reader)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure")
                await writer.drain()
        writer.close()

    def over_tls(port: int) -> UpstreamRequest:
        built = UpstreamRequest("POST", httpx.URL(f"https://localhost:{port}/v1/x"), [], b"")
        built.extensions["timeout"] = TIMEOUTS
        return built

    async def main() -> None:
        server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=server_tls)
        port = server.sockets[0].getsockname()[1]
        async with server:
            trusting = UpstreamTransport(ssl.create_default_context(cafile=str(cert)))
            for _ in range(2):
                assert (await call(trusting, over_tls(port)))[:2] == (200, b"secure")
            assert len(accepted) == 1
            await trusting.aclose()
            # The system's CAs do not know this certificate: refused, like any impostor.
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await UpstreamTransport().send(over_tls(port))

    asyncio.run(main())


def test_a_burst_of_new_connections_looks_the_host_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    lookups: list[str] = []
    original = UpstreamTransport._lookup

    async def counted(self: UpstreamTransport, host: str, port: int) -> list[tuple[object, ...]]:
        lookups.append(host)
        return await original(self, host, port)

    monkeypatch.setattr(UpstreamTransport, "_lookup", counted)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(0.05)  # all twenty in flight at once: twenty connections
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.read()

    async def test(port: int, accepted: list[int]) -> None:
        transport = UpstreamTransport()

        async def one() -> int:
            by_name = UpstreamRequest("POST", httpx.URL(f"http://localhost:{port}/v1/x"), [], b"{}")
            by_name.extensions["timeout"] = TIMEOUTS
            return (await call(transport, by_name))[0]

        assert await asyncio.gather(*(one() for _ in range(20))) == [200] * 20
        assert len(accepted) == 20
        await transport.aclose()

    serve(handler, test)
    assert lookups == ["localhost"]
