"""A stand-in for Redis on loopback that can stall: it accepts connections, reads, never answers.

That is what a hung Redis (a stopped process, a full disk, a long fork) looks like to its
clients, and the one fault a refused connection does not exercise: every call waits.
"""

import contextlib
import socket
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings

# What the gateway's clients put in CLIENT SETINFO at connect (tokenbyte/redis.py).
HOT = b"tokenbyte-hot"
LISTENER = b"tokenbyte-listener"


@dataclass
class _Connection:
    client: socket.socket
    upstream: socket.socket | None = None
    received: bytearray = field(default_factory=bytearray)
    stalled_bytes: int = 0  # received while stalled: commands nobody answered

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


class StallingRedis:
    """Stalled from the start; with `relay=True` it relays to the real Redis until stall().

    heal() drops every connection (as a restarted Redis would) and relays new ones again.
    """

    def __init__(self, *, relay: bool = False) -> None:
        real = urlsplit(settings.REDIS_URL) if relay else None
        self._target = (real.hostname or "127.0.0.1", real.port or 6379) if real else None
        db = (real.path.strip("/") or "0") if real else "0"  # the real one's database
        self.stalled = not relay
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self._listener.getsockname()[1]}/{db}"
        self._connections: list[_Connection] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="stalling-redis", daemon=True).start()

    def stall(self) -> None:
        self.stalled = True

    def heal(self) -> None:
        assert self._target is not None, "nothing to relay to"
        with self._lock:
            connections, self._connections = self._connections, []
            self.stalled = False
        for connection in connections:
            connection.close()

    def connections(self, role: bytes) -> int:
        """Connections that introduced themselves as `role`, from the start."""
        with self._lock:
            return sum(role in connection.received for connection in self._connections)

    def bytes_from(self, role: bytes) -> int:
        """Everything connections of `role` sent, answered or not."""
        with self._lock:
            return sum(len(c.received) for c in self._connections if role in c.received)

    def unanswered_bytes(self, role: bytes) -> int:
        """What connections of `role` sent while stalled (never answered)."""
        with self._lock:
            return sum(c.stalled_bytes for c in self._connections if role in c.received)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()

    def __enter__(self) -> "StallingRedis":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            connection = _Connection(client)
            if not self.stalled and self._target is not None:
                connection.upstream = socket.create_connection(self._target)
                threading.Thread(target=self._answer, args=(connection,), daemon=True).start()
            with self._lock:
                self._connections.append(connection)
            threading.Thread(target=self._read, args=(connection,), daemon=True).start()

    def _read(self, connection: _Connection) -> None:
        with contextlib.suppress(OSError):
            while data := connection.client.recv(65536):
                with self._lock:
                    connection.received += data
                    stalled = self.stalled or connection.upstream is None
                    if stalled:
                        connection.stalled_bytes += len(data)
                if not stalled and connection.upstream is not None:
                    connection.upstream.sendall(data)

    def _answer(self, connection: _Connection) -> None:
        assert connection.upstream is not None
        with contextlib.suppress(OSError):
            while data := connection.upstream.recv(65536):
                if not self.stalled:
                    connection.client.sendall(data)
