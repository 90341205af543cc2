"""A raw HTTP/1.1 client on a socket: sends exactly the bytes a test writes, at its pace."""

import socket
import threading
import time
from dataclasses import dataclass

import orjson


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        parsed: dict[str, object] = orjson.loads(self.body)
        return parsed


class RawConnection:
    """One client connection to `url`'s host and port; every wait is bounded by `timeout`."""

    def __init__(self, url: str, timeout: float = 20.0) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self._buffer = b""
        self.send_error: OSError | None = None
        self.bytes_sent = 0

    def __enter__(self) -> "RawConnection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.bytes_sent += len(data)

    def send_in_background(self, data: bytes, chunk: int = 1 << 20) -> threading.Thread:
        """Send `data` from a thread, as a client that does not wait for an answer."""

        def run() -> None:
            try:
                for start in range(0, len(data), chunk):
                    self.send(data[start : start + chunk])
            except OSError as exc:  # the server stopped reading: what a refusal looks like
                self.send_error = exc

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def trickle(self, pieces: list[bytes], interval: float) -> threading.Thread:
        """Send one piece every `interval` seconds from a thread, until the server hangs up."""

        def run() -> None:
            try:
                for piece in pieces:
                    time.sleep(interval)
                    self.send(piece)
            except OSError as exc:
                self.send_error = exc

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self._buffer += chunk

    def read_response(self) -> RawResponse:
        while b"\r\n\r\n" not in self._buffer:
            self._fill()
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self._buffer) < length:
            self._fill()
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return RawResponse(int(status_line.split()[1]), headers, body)

    def closed_by_server(self) -> bool:
        """True once the server has closed (EOF or reset); False if it is still open at timeout."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except TimeoutError:
            return False
        except OSError:
            return True
