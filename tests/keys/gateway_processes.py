"""Real gateway processes for the key tests: uvicorn subprocesses of the whole ASGI app."""

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import httpx

from tests.conftest import REPO, database_url, free_port, subprocess_env
from tokenbyte.front_door import uvicorn_arguments


def within_a_second(check: Callable[[], bool]) -> float:
    """Poll `check` every 20 ms; the seconds it took to hold, failing after 1 s."""
    start = time.monotonic()
    while not check():
        elapsed = time.monotonic() - start
        assert elapsed < 1.0, "not within 1 s"
        time.sleep(0.02)
    return time.monotonic() - start


# Base URL -> the process serving it, while it runs (for tests that kill one).
RUNNING: dict[str, subprocess.Popen[bytes]] = {}


@contextlib.contextmanager
def gateway_process(**env: str | None) -> Iterator[str]:
    """A gateway on a free loopback port, ready (catalog loaded); yields its base URL.

    It works on this test's database unless `env` names another DATABASE_URL.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "tokenbyte.asgi:application"),
            *("--host", "127.0.0.1", "--port", str(port), *uvicorn_arguments()),
            *("--log-level", "warning"),
        ],
        cwd=REPO,
        env=subprocess_env(**{"DEBUG": "on", "DATABASE_URL": database_url(), **env}),
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"the gateway exited with {process.returncode}"
            assert time.monotonic() < deadline, "the gateway did not become ready in 30 s"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            time.sleep(0.1)
        RUNNING[url] = process
        yield url
    finally:
        RUNNING.pop(url, None)
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class TcpRelay:
    """Relays a loopback port to a server; cut() severs every connection and refuses new ones.

    Puts a real network fault between a gateway and its database.
    """

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="tcp-relay", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # cut
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        # shutdown() wakes the blocked accept(); close() alone would leave the port listening.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
