"""Just enough HTTP on raw ASGI for the gateway: no framework on the hot path."""

import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson

from proxy.gateway.errors import InvalidRequest, PayloadTooLarge

Headers = list[tuple[bytes, bytes]]
# ASGI's three arguments. Messages stay plain dicts: the gateway reads a few keys of a few
# message types, and asgiref.typing's TypedDict unions would need a cast at each read.
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_CONTENT_TYPE = (b"content-type", b"application/json")


class Capture(Protocol):
    """What the app knows of a request's body capture (pipeline/bodies.py BodyCapture)."""

    def close(self) -> None: ...


# A client's own x-request-id is kept when it is this tame; otherwise we mint one.
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{8,128}")


class Request:
    __slots__ = (
        "capture",
        "headers",
        "method",
        "path",
        "raw",
        "receive",
        "request_id",
        "scope",
        "send",
    )

    def __init__(
        self, scope: Scope, receive: Receive, send: Send, new_id: Callable[[], str]
    ) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.headers: Headers = scope["headers"]
        self.raw = b""  # the body, once read by json(): its size bounds the prompt's tokens
        # Body logging's capture (pipeline/bodies.py), closed once the answer is sent; None for
        # the accounts that keep no bodies.
        self.capture: Capture | None = None
        supplied = self.header(b"x-request-id")
        self.request_id = (
            supplied.decode() if supplied and _REQUEST_ID.fullmatch(supplied) else "req_" + new_id()
        )

    def header(self, name: bytes) -> bytes | None:
        """The first value of a header; `name` in lower case (ASGI lower-cases names)."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    async def body(self, limit: int) -> bytes:
        declared = self.header(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(
                f"The request body is {int(declared)} bytes; the limit is {limit} bytes."
            )
        chunks = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"The request body exceeds the limit of {limit} bytes.")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def json(self, limit: int) -> Any:
        raw = self.raw = await self.body(limit)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(
                f"The request body is not valid JSON: {exc}", code="invalid_json"
            ) from exc


class ClientDisconnected(Exception):
    """The client went away before its request was read."""


class Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, body: bytes, headers: Headers | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers if headers is not None else [JSON_CONTENT_TYPE]

    @classmethod
    def json(cls, data: Any, status: int = 200) -> "Response":
        return cls(status, orjson.dumps(data))


async def send_response(send: Send, response: Response, request_id: str) -> None:
    headers = [
        *response.headers,
        (b"content-length", str(len(response.body)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
