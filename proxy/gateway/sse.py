"""Server-sent events: an incremental parser for upstream streams and the framing we send."""

from dataclasses import dataclass
from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True, slots=True)
class Event:
    name: str  # "message" unless the stream named it (Anthropic names every event)
    data: bytes


class SSEParser:
    """Feed it bytes as they arrive; it returns the events completed so far."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[Event]:
        buffer = self._buffer + chunk
        if b"\r" in buffer:
            # Normalise CRLF and CR line ends. A trailing CR might start a CRLF: keep it back.
            keep = b"\r" if buffer.endswith(b"\r") else b""
            buffer = buffer[: len(buffer) - len(keep)].replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            buffer += keep
        *blocks, self._buffer = buffer.split(b"\n\n")
        events = []
        for block in blocks:
            event = _parse_block(block)
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[Event]:
        """What is left when the stream ends without a final blank line."""
        rest, self._buffer = self._buffer, b""
        event = _parse_block(rest.rstrip(b"\n"))
        return [event] if event is not None else []


def _parse_block(block: bytes) -> Event | None:
    if block.startswith(b"data: ") and b"\n" not in block:  # the common case, one data line
        return Event("message", block[6:])
    name = "message"
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.decode()
    if not data:
        return None
    return Event(name, b"\n".join(data))


def frame(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"


def named_frame(name: str, data: bytes) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


def named_frames(events: list[tuple[str, dict[str, Any]]]) -> bytes:
    """(name, data) events as SSE frames: Anthropic's and the Responses API's streams."""
    return b"".join([named_frame(name, orjson.dumps(data)) for name, data in events])
