"""Reuse: when a pooled connection may carry the next request, and when a request is re-sent."""

import asyncio

import httpx
import pytest

from tests.proxy.conformance.conftest import Factory, call, request, run
from tests.proxy.conformance.wire import Peer, RawServer, keep_answering, reply_for, response


def test_three_calls_share_one_kept_alive_connection(client: Factory) -> None:
    async def main() -> None:
        async with RawServer(keep_answering) as server:
            transport = client()
            for tenant in (b"A", b"B", b"C"):
                answer = await call(transport, request(server.url(), tenant=tenant))
                assert answer.body == b'{"reply_to":"%s"}' % tenant
            await transport.aclose()
        assert server.connections == 1
        assert len(server.requests) == 3

    run(main())


def test_a_connection_the_upstream_closed_while_idle_is_not_written_to(client: Factory) -> None:
    async def script(peer: Peer) -> None:
        seen = await peer.read_request()
        await peer.send(response(reply_for(seen)))
        if peer.index == 0:
            await asyncio.sleep(0.05)  # its keep-alive timer fires: an orderly close
            return
        await keep_answering(peer)

    async def main() -> None:
        async with RawServer(script) as server:
            transport = client()
            await call(transport, request(server.url(), tenant=b"A"))
            await asyncio.sleep(0.3)  # the close has arrived by now
            second = await call(transport, request(server.url(), tenant=b"D"))
            await transport.aclose()
        assert second.body == b'{"reply_to":"D"}'
        assert [seen.connection for seen in server.requests] == [0, 1], "sent once, anew"

    run(main())


@pytest.mark.parametrize("ending", ["close", "reset"])
def test_a_request_fully_written_is_never_sent_again(client: Factory, ending: str) -> None:
    async def script(peer: Peer) -> None:
        seen = await peer.read_request()
        await peer.send(response(reply_for(seen)))
        if peer.index == 0:
            # The next request is read whole, then the connection dies without an answer: the
            # upstream may have acted on it, so no client may send it a second time.
            await peer.read_request()
            if ending == "reset":
                peer.reset()
            return
        await keep_answering(peer)

    async def main() -> None:
        async with RawServer(script) as server:
            transport = client()
            await call(transport, request(server.url(), tenant=b"A"))
            with pytest.raises(httpx.TransportError):
                await call(transport, request(server.url(), tenant=b"D"))
            await transport.aclose()
        tenants = [seen.header(b"x-tenant") for seen in server.requests]
        assert tenants == [b"A", b"D"], "D's request reached the upstream exactly once"

    run(main())


def test_a_fresh_connection_that_dies_before_answering_is_not_retried(client: Factory) -> None:
    async def script(peer: Peer) -> None:
        await peer.read_request()  # then closes without a word

    async def main() -> None:
        async with RawServer(script) as server:
            transport = client()
            with pytest.raises(httpx.TransportError):
                await call(transport, request(server.url()))
            await transport.aclose()
        assert server.connections == 1
        assert len(server.requests) == 1

    run(main())


def test_a_write_that_fails_on_a_reused_connection_may_be_retried_never_doubled(
    client: Factory, request_client: str
) -> None:
    big = b'{"pad":"' + b"x" * (8 * 1024 * 1024) + b'"}'  # far more than a socket buffer

    async def script(peer: Peer) -> None:
        seen = await peer.read_request()
        await peer.send(response(reply_for(seen)))
        if peer.index == 0:
            await peer.reader.readuntil(b"\r\n\r\n")  # the head of the big one, then abort
            peer.reset()
            return
        await keep_answering(peer)

    async def main() -> None:
        async with RawServer(script) as server:
            transport = client()
            await call(transport, request(server.url(), tenant=b"A"))
            try:
                answer = await call(transport, request(server.url(), tenant=b"D", body=big))
            except httpx.TransportError:
                answer = None
            await transport.aclose()
        whole = [seen for seen in server.requests if seen.header(b"x-tenant") == b"D"]
        assert len(whole) <= 1, "never received twice"
        if answer is not None:
            assert answer.body == b'{"reply_to":"D"}'
        if request_client == "ours":
            assert answer is not None, "ours re-sends what the upstream cannot have read"

    run(main())


@pytest.fixture
def request_client(client: Factory, request: pytest.FixtureRequest) -> str:
    return str(request.node.callspec.params["client"])


@pytest.mark.parametrize("stage", ["waiting for the head", "reading the body"])
def test_a_cancelled_exchange_never_returns_its_connection_to_the_pool(
    client: Factory, stage: str
) -> None:
    async def script(peer: Peer) -> None:
        seen = await peer.read_request()
        if peer.index == 0:
            late = response(reply_for(seen))
            if stage == "reading the body":
                await peer.send(late[:-5])
            await asyncio.sleep(0.3)
            await peer.send(late[-5:] if stage == "reading the body" else late)  # too late
            await peer.wait_closed_by_client()
            return
        await peer.send(response(reply_for(seen)))
        await keep_answering(peer)

    async def main() -> None:
        async with RawServer(script) as server:
            transport = client()
            pending = asyncio.ensure_future(call(transport, request(server.url(), tenant=b"A")))
            await asyncio.sleep(0.15)
            pending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pending
            await asyncio.sleep(0.4)  # A's late answer has arrived wherever it went
            second = await call(transport, request(server.url(), tenant=b"D"))
            await transport.aclose()
        assert second.body == b'{"reply_to":"D"}', "never the cancelled request's answer"
        assert server.connections == 2

    run(main())


def test_connections_per_origin_are_capped_and_a_waiter_times_out(client: Factory) -> None:
    busy = 0
    most = 0

    async def script(peer: Peer) -> None:
        nonlocal busy, most
        while True:
            seen = await peer.read_request()
            busy += 1
            most = max(most, busy)
            await asyncio.sleep(0.5)
            busy -= 1
            await peer.send(response(reply_for(seen)))

    async def main() -> None:
        async with RawServer(script) as server:
            impatient = client(max_connections_per_origin=2)
            calls = [
                call(impatient, request(server.url(), tenant=b"%d" % n, pool=0.2)) for n in range(3)
            ]
            results = await asyncio.gather(*calls, return_exceptions=True)
            await impatient.aclose()
            # With room to wait, a third caller gets the first free connection.
            patient = client(max_connections_per_origin=2)
            waited = await asyncio.gather(
                *(call(patient, request(server.url(), pool=5.0)) for _ in range(3))
            )
            await patient.aclose()
        assert sum(isinstance(result, httpx.PoolTimeout) for result in results) == 1, results
        assert [answer.status for answer in waited] == [200, 200, 200]
        assert most == 2, "never more than two connections at once"
        assert server.connections == 4, "two for each client"

    run(main())


def test_idle_connections_are_reaped(client: Factory) -> None:
    reaped = asyncio.Event()

    async def script(peer: Peer) -> None:
        seen = await peer.read_request()
        await peer.send(response(reply_for(seen)))
        if await peer.wait_closed_by_client(within=10.0):
            reaped.set()

    async def main() -> None:
        async with RawServer(script) as server:
            transport = client(keepalive_seconds=0.5)
            await call(transport, request(server.url()))
            # Nothing else happens: the client closes the idle connection on its own.
            async with asyncio.timeout(10.0):
                await reaped.wait()
            await transport.aclose()

    run(main())


def test_an_answer_closed_unread_leaves_nothing_for_the_next_request(client: Factory) -> None:
    async def main() -> None:
        async with RawServer(keep_answering) as server:
            transport = client()
            unread = await transport.send(request(server.url(), tenant=b"A"))
            await asyncio.sleep(0.1)  # A's whole body has arrived; nobody reads it
            await unread.aclose()
            second = await call(transport, request(server.url(), tenant=b"D"))
            await transport.aclose()
        assert second.body == b'{"reply_to":"D"}', "none of A's bytes in D's answer"

    run(main())
