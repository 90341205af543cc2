"""Raw loopback servers that write exact bytes, for the upstream-client conformance suite.

Each accepted connection runs the test's script with a `Peer`; the server records every
connection and every request it read, so a test can tell what reached the wire: how many
connections, which request arrived on which connection, whether a request arrived twice.
"""

import asyncio
import base64
import contextlib
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

Script = Callable[["Peer"], Awaitable[None]]


@dataclass
class Seen:
    connection: int  # index of the connection it arrived on
    head: bytes
    body: bytes

    @property
    def request_line(self) -> bytes:
        return self.head.split(b"\r\n", 1)[0]

    def header(self, name: bytes) -> bytes | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name:
                return value.strip()
        return None


@dataclass
class Peer:
    """The server's side of one connection."""

    index: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    server: "RawServer"

    async def read_request(self) -> Seen:
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        seen = Seen(self.index, head, await self.reader.readexactly(length))
        self.server.requests.append(seen)
        return seen

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def wait_closed_by_client(self, within: float = 10.0) -> bool:
        """True when the client closes its end within `within` seconds (EOF or reset)."""
        try:
            async with asyncio.timeout(within):
                while await self.reader.read(65536):
                    pass
        except TimeoutError:
            return False
        except ConnectionError:
            pass
        self.server.closed_by_client.append(self.index)
        return True

    def reset(self) -> None:
        """Abort with a TCP RST instead of an orderly FIN."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport = self.writer.transport
        transport.abort()


@dataclass
class RawServer:
    script: Script
    host: str = "127.0.0.1"
    port: int = 0
    tls: ssl.SSLContext | None = None
    connections: int = 0
    requests: list[Seen] = field(default_factory=list)
    closed_by_client: list[int] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def __aenter__(self) -> "RawServer":
        self._server = await asyncio.start_server(
            self._on_connect, self.host, self.port, ssl=self.tls
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._server.wait_closed()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = Peer(self.connections, reader, writer, self)
        self.connections += 1
        try:
            await self.script(peer)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # a broken script must fail its test, not vanish
            self.errors.append(exc)
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    def url(self, path: str = "/v1/chat/completions", host: str | None = None) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host or self.host}:{self.port}{path}"


def response(body: bytes, status: bytes = b"200 OK", headers: bytes = b"") -> bytes:
    """A complete, well-framed HTTP/1.1 response."""
    return b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s" % (
        status,
        len(body),
        headers,
        body,
    )


def reply_for(seen: Seen) -> bytes:
    """The answer a fake upstream gives this request: names whose it is."""
    return b'{"reply_to":"%s"}' % (seen.header(b"x-tenant") or b"?")


async def keep_answering(peer: Peer) -> None:
    while True:
        seen = await peer.read_request()
        await peer.send(response(reply_for(seen)))


@contextlib.asynccontextmanager
async def dead_address(host: str = "127.0.0.2", port: int = 0) -> AsyncIterator[int]:
    """A listening address that never completes a handshake (its backlog is full), as a host
    whose packets are dropped: connection attempts hang instead of being refused."""
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.bind((host, port))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.socket(listener.family)
    filler.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        filler.connect((host, port))
    await asyncio.sleep(0.05)
    try:
        yield port
    finally:
        filler.close()
        listener.close()


@dataclass
class RecordingProxy:
    """An HTTP proxy as RFC 9110 describes one: CONNECT tunnels and absolute-form requests.

    Records what it was asked for, and insists on credentials when given some.
    """

    credentials: bytes | None = None  # b"user:password"
    port: int = 0
    tunnels: list[bytes] = field(default_factory=list)  # CONNECT targets
    forwarded: list[bytes] = field(default_factory=list)  # absolute-form request lines
    refused: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def __aenter__(self) -> "RecordingProxy":
        self._server = await asyncio.start_server(self._on_connect, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await self._server.wait_closed()

    def url(self) -> str:
        userinfo = f"{self.credentials.decode()}@" if self.credentials else ""
        return f"http://{userinfo}127.0.0.1:{self.port}"

    def _authorised(self, head: bytes) -> bool:
        if self.credentials is None:
            return True
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"proxy-authorization":
                scheme, _, token = value.strip().partition(b" ")
                return scheme.lower() == b"basic" and token == base64.b64encode(self.credentials)
        return False

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target, _ = head.split(b"\r\n", 1)[0].split(b" ", 2)
            if not self._authorised(head):
                self.refused += 1
                writer.write(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n'
                )
                await writer.drain()
                return
            if method == b"CONNECT":
                self.tunnels.append(target)
                host, _, port = target.rpartition(b":")
                up_reader, up_writer = await asyncio.open_connection(host.decode(), int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
            else:
                self.forwarded.append(head.split(b"\r\n", 1)[0])
                authority = target.split(b"://", 1)[1].split(b"/", 1)[0]
                host, _, port = authority.rpartition(b":")
                up_reader, up_writer = await asyncio.open_connection(host.decode(), int(port))
                kept = [
                    line
                    for line in head.split(b"\r\n")
                    if not line.lower().startswith(b"proxy-authorization:")
                ]
                up_writer.write(b"\r\n".join(kept))
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()
