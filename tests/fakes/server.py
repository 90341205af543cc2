"""A tiny ASGI toolkit for strict provider fakes, served by uvicorn in a thread on 127.0.0.1."""

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson
import uvicorn

from tests.conftest import free_port


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Scripted:
    """What the fake does for one coming request instead of answering normally."""

    status: int = 200
    body: Any = None  # JSON-able, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # before answering
    chunk_delay: float | None = None  # streaming: between chunks
    cut_after_chunks: int | None = None  # streaming: close the connection after N chunks


class FakeAPI:
    """Base of the provider fakes: records requests, plays scripted behaviour, then answers."""

    # Sent with every answer, as the real API does: its organisation, project and request ids,
    # cookies and server names. None of it may reach the gateway's clients.
    response_headers: ClassVar[dict[str, str]] = {}

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: deque[Scripted] = deque()
        self.chunk_delay = 0.0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw
        path = scope["path"] + (
            ("?" + scope["query_string"].decode()) if scope["query_string"] else ""
        )
        self.received.append(Received(scope["method"], path, headers, body))
        scripted = self.script.popleft() if self.script else None
        if scripted is not None and scripted.delay:
            await asyncio.sleep(scripted.delay)
        if scripted is not None and scripted.status != 200:
            await self.send_json(send, scripted.status, scripted.body, scripted.headers)
            return
        await self.handle(scope["method"], scope["path"], headers, body, send, scripted)

    async def handle(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: Any,
        send: Any,
        scripted: Scripted | None,
    ) -> None:
        raise NotImplementedError

    async def send_json(
        self, send: Any, status: int, data: Any, headers: dict[str, str] | None = None
    ) -> None:
        payload = data if isinstance(data, bytes) else orjson.dumps(data)
        extra = [
            (k.encode(), v.encode())
            for k, v in {**self.response_headers, **(headers or {})}.items()
        ]
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), *extra],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def send_events(self, send: Any, events: list[bytes], scripted: Scripted | None) -> None:
        """Send SSE frames one by one, pausing between them, as a real model streams."""
        delay = (
            self.chunk_delay
            if scripted is None or scripted.chunk_delay is None
            else scripted.chunk_delay
        )
        cut = scripted.cut_after_chunks if scripted is not None else None
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                    *[(k.encode(), v.encode()) for k, v in self.response_headers.items()],
                ],
            }
        )
        for index, event in enumerate(events):
            if cut is not None and index >= cut:
                raise ConnectionAbortedError("scripted cut")  # uvicorn drops the connection
            await send({"type": "http.response.body", "body": event, "more_body": True})
            if delay:
                await asyncio.sleep(delay)
        await send({"type": "http.response.body", "body": b""})


class FakeServer:
    """Serves a fake on a free loopback port until the context ends."""

    def __init__(self, app: FakeAPI) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="error", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="fake-upstream")

    def __enter__(self) -> "FakeServer":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise AssertionError("fake upstream did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def sse(data: Any) -> bytes:
    return b"data: " + (data if isinstance(data, bytes) else orjson.dumps(data)) + b"\n\n"
