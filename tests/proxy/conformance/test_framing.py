"""Framing: which bytes are the answer to which request (DESIGN.md §2b, the first door)."""

import asyncio
import gzip
import zlib

import httpx
import pytest

from tests.proxy.conformance.conftest import Factory, call, request, run
from tests.proxy.conformance.wire import Peer, RawServer, keep_answering, reply_for, response


@pytest.mark.parametrize(
    "interim",
    [
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </b.js>\r\n\r\n",
    ],
    ids=["100", "103", "100+103"],
)
def test_interim_responses_are_skipped_and_leave_nothing_for_the_next_request(
    client: Factory, interim: bytes
) -> None:
    async def script(peer: Peer) -> None:
        while True:
            seen = await peer.read_request()
            await peer.send(interim)
            await asyncio.sleep(0.05)  # the answer comes a moment later, as a real one would
            await peer.send(response(reply_for(seen), headers=b"X-Final: yes\r\n"))

    async def main() -> None:
        async with RawServer(script) as server:
            transport = client()
            first = await call(transport, request(server.url(), tenant=b"A"))
            second = await call(transport, request(server.url(), tenant=b"D"))
            await transport.aclose()
        assert (first.status, first.body) == (200, b'{"reply_to":"A"}')
        assert (second.status, second.body) == (200, b'{"reply_to":"D"}')
        assert first.headers.get("x-final") == "yes"
        assert "link" not in first.headers, "an interim response's headers are not the answer's"
        assert server.connections == 1, "a well-framed exchange keeps the connection"
        assert not server.errors

    run(main())


def test_bytes_arriving_on_an_idle_pooled_connection_close_it(client: Factory) -> None:
    stray = response(b'{"reply_to":"somebody else"}')

    async def script(peer: Peer) -> None:
        seen = await peer.read_request()
        await peer.send(response(reply_for(seen)))
        if peer.index == 0:
            await asyncio.sleep(0.1)
            await peer.send(stray)  # unasked, on the idle connection
        await peer.wait_closed_by_client()

    async def main() -> None:
        async with RawServer(script) as server:
            transport = client()
            assert (await call(transport, request(server.url(), tenant=b"A"))).body == (
                b'{"reply_to":"A"}'
            )
            await asyncio.sleep(0.4)
            second = await call(transport, request(server.url(), tenant=b"D"))
            await transport.aclose()
        assert second.body == b'{"reply_to":"D"}', "the stray bytes are nobody's answer"
        assert server.connections == 2
        assert [seen.connection for seen in server.requests] == [0, 1]

    run(main())


def test_bytes_after_the_end_of_a_response_close_the_connection(client: Factory) -> None:
    async def script(peer: Peer) -> None:
        while True:
            seen = await peer.read_request()
            # The answer and, in the same write, a second response nobody asked for.
            await peer.send(response(reply_for(seen)) + response(b'{"reply_to":"leak"}'))

    async def main() -> None:
        async with RawServer(script) as server:
            transport = client()
            first = await call(transport, request(server.url(), tenant=b"A"))
            second = await call(transport, request(server.url(), tenant=b"D"))
            await transport.aclose()
        assert first.body == b'{"reply_to":"A"}'
        assert second.body == b'{"reply_to":"D"}'
        assert server.connections == 2, "the connection with trailing bytes was not reused"

    run(main())


CUT_SHORT = {
    "content-length not reached": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b'{"partial":',
        "close",
    ),
    "chunked without its last chunk": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        "close",
    ),
    "close-delimited, ended by a reset": (
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b'{"partial":',
        "reset",
    ),
}


@pytest.mark.parametrize("wire", CUT_SHORT.values(), ids=CUT_SHORT.keys())
def test_a_body_cut_short_is_an_error_never_a_complete_answer(
    client: Factory, wire: tuple[bytes, str]
) -> None:
    data, ending = wire

    async def script(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(data)
        await asyncio.sleep(0.1)
        if ending == "reset":
            peer.reset()

    async def main() -> None:
        async with RawServer(script) as server:
            transport = client()
            with pytest.raises(httpx.TransportError):
                await call(transport, request(server.url()))
            await transport.aclose()

    run(main())


def test_a_close_delimited_body_ended_by_an_orderly_close_is_complete(client: Factory) -> None:
    async def script(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart one, ")
        await asyncio.sleep(0.05)
        await peer.send(b"part two")

    async def main() -> None:
        async with RawServer(script) as server:
            transport = client()
            answer = await call(transport, request(server.url()))
            await transport.aclose()
        assert (answer.status, answer.body) == (200, b"part one, part two")

    run(main())


@pytest.mark.parametrize(
    ("method", "head"),
    [
        ("POST", b"HTTP/1.1 204 No Content\r\n\r\n"),
        ("GET", b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\n\r\n'),
    ],
    ids=["204", "304"],
)
def test_bodiless_answers_do_not_wait_for_the_connection_to_close(
    client: Factory, method: str, head: bytes
) -> None:
    async def script(peer: Peer) -> None:
        while True:
            seen = await peer.read_request()
            if seen.header(b"x-tenant") == b"A":
                await peer.send(head)  # no length, no close: none is needed
            else:
                await peer.send(response(reply_for(seen)))

    async def main() -> None:
        async with RawServer(script) as server:
            transport = client()
            # A client waiting for a close would hit the read timeout instead.
            empty = await call(transport, request(server.url(), method=method, read=2.0))
            after = await call(transport, request(server.url(), tenant=b"D"))
            await transport.aclose()
        assert empty.status == int(head[9:12])
        assert empty.body == b""
        assert after.body == b'{"reply_to":"D"}'
        assert server.connections == 1, "the connection stays usable"

    run(main())


ENCODED = {
    "gzip": gzip.compress(b'{"reply_to":"A"}'),
    "deflate": zlib.compress(b'{"reply_to":"A"}'),
    "br": b"\x1b\x0f\x00\xf8\xa5\x40\xc2\xee\xa4\xff\x00",  # not something to pass on raw
}


@pytest.mark.parametrize("encoding", ENCODED)
def test_an_encoded_body_despite_identity_is_decoded_or_refused(
    client: Factory, encoding: str
) -> None:
    body = ENCODED[encoding]

    async def script(peer: Peer) -> None:
        seen = await peer.read_request()
        assert seen.header(b"accept-encoding") in (None, b"identity")
        await peer.send(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n%s"
            % (encoding.encode(), len(body), body)
        )
        await peer.wait_closed_by_client()

    async def main() -> None:
        async with RawServer(script) as server:
            transport = client()
            try:
                answer = await call(transport, request(server.url()))
            except httpx.TransportError as refused:
                outcome = f"refused: {refused}"
            else:
                outcome = f"answered: {answer.body!r}"
            await transport.aclose()
        # Decoded, or refused with an error that says why; never the encoded bytes as the body.
        assert outcome == """answered: b'{"reply_to":"A"}'""" or (
            outcome.startswith("refused") and "encod" in outcome.lower()
        ), outcome
        assert not server.errors

    run(main())


def test_a_stream_is_relayed_as_it_arrives(client: Factory) -> None:
    got_first = asyncio.Event()

    async def script(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        await peer.send(b"9\r\ndata: 1\n\n\r\n")
        await got_first.wait()  # the second event only once the first reached the client
        await peer.send(b"9\r\ndata: 2\n\n\r\n0\r\n\r\n")
        await keep_answering(peer)

    async def main() -> None:
        async with RawServer(script) as server:
            transport = client()
            response = await transport.send(request(server.url()))
            received = b""
            async with asyncio.timeout(5.0):
                async for chunk in response.stream:
                    received += chunk
                    if received == b"data: 1\n\n":
                        got_first.set()
            await response.aclose()
            after = await call(transport, request(server.url(), tenant=b"D"))
            await transport.aclose()
        assert received == b"data: 1\n\ndata: 2\n\n"
        assert after.body == b'{"reply_to":"D"}'
        assert server.connections == 1, "a complete chunked body keeps the connection"

    run(main())


def test_silence_past_the_read_timeout_is_a_read_timeout(client: Factory) -> None:
    async def script(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await peer.wait_closed_by_client()  # then nothing

    async def main() -> None:
        async with RawServer(script) as server:
            transport = client()
            with pytest.raises(httpx.ReadTimeout):
                await call(transport, request(server.url(), read=0.3))
            await transport.aclose()

    run(main())


@pytest.mark.parametrize(
    "wire",
    [
        b"HTTP/1.1 two hundred\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n2\r\nok\r\n",
    ],
    ids=["status line", "two lengths", "length and chunked"],
)
def test_a_malformed_or_ambiguous_response_is_a_protocol_error(
    client: Factory, wire: bytes
) -> None:
    async def script(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(wire)
        await peer.wait_closed_by_client()

    async def main() -> None:
        async with RawServer(script) as server:
            transport = client()
            with pytest.raises(httpx.TransportError):
                await call(transport, request(server.url()))
            await transport.aclose()

    run(main())
