"""Another provider's stream for an endpoint whose API is not chat's: the upstream's events
through its adapter (providers/) to chat.completion.chunk dicts, then through the endpoint's
event writer to its own named SSE events (Anthropic's on /v1/messages, the Responses API's on
/v1/responses); the last ones, priced, once the call is settled."""

from decimal import Decimal
from typing import Any, Protocol

from billing.usage import Usage
from proxy.gateway.errors import GatewayError
from proxy.gateway.pipeline.relay import StreamOutput
from proxy.gateway.sse import Event, named_frames
from proxy.providers.base import StreamTranslator

Events = list[tuple[str, dict[str, Any]]]


class EventWriter(Protocol):
    """An endpoint's events from chat chunks (dialects/…/stream.py, responses_output.py)."""

    def chunk(self, chunk: dict[str, Any]) -> Events: ...

    def close(self, usage: Usage, cost: Decimal) -> Events: ...

    def response_id(self) -> str: ...

    def error_frame(self, error: GatewayError) -> bytes: ...


class TranslatedStream(StreamOutput):
    __slots__ = ("body", "pending", "translator", "writer")

    def __init__(self, translator: StreamTranslator, body: dict[str, Any], writer: EventWriter):
        self.translator = translator
        self.body = body  # the chat core's request: its messages bound an estimated usage
        self.writer = writer
        # The events made from what came with a failing one, in the same read: they go out
        # before the error (whose Responses sequence_number then follows the last one seen).
        self.pending = b""

    @property
    def done(self) -> bool:
        return self.translator.done

    def frames(self, events: list[Event]) -> bytes:
        feed, write = self.translator.feed, self.writer.chunk
        out: Events = []
        try:
            for event in events:
                for piece in feed(event):
                    out += write(piece)
        except GatewayError:
            self.pending = named_frames(out)
            raise
        return named_frames(out)

    def tail(self) -> bytes:
        write = self.writer.chunk
        return named_frames([out for piece in self.translator.finish() for out in write(piece)])

    def final_usage(self) -> Usage:
        return self.translator.final_usage(self.body.get("messages"))

    def response_id(self) -> str:
        return self.writer.response_id()

    def closing(self, usage: Usage, cost: Decimal) -> bytes:
        return named_frames(self.writer.close(usage, cost))

    def failure(self, error: GatewayError) -> bytes:
        return self.pending + self.writer.error_frame(error)
