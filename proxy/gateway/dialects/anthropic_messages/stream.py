"""OpenAI chat.completion.chunk dicts as Anthropic's SSE events, for /v1/messages to a model
that is not Anthropic's: message_start, then per content block content_block_start / _delta /
_stop, then message_delta (stop reason, usage and cost) and message_stop."""

from decimal import Decimal
from typing import Any

from billing.usage import Usage
from proxy.gateway.dialects.anthropic_messages.api import STOP_REASONS, anthropic_usage, message_id
from proxy.gateway.errors import GatewayError
from proxy.gateway.routing import Card
from proxy.gateway.sse import named_frame

Events = list[tuple[str, dict[str, Any]]]


class AnthropicEventWriter:
    def __init__(self, card: Card) -> None:
        self.card = card
        self.started = False
        self.index = -1  # the open content block's index; -1 before the first
        self.open_kind: str | None = None  # "text" or "tool_use" while a block is open
        self.tool_blocks: dict[int, int] = {}  # OpenAI tool call index -> block index
        self.finish: str | None = None
        self._message_id: str | None = None  # message_start's `id`, once chosen

    def response_id(self) -> str:
        """The `id` the client is (or will be) told in message_start."""
        if self._message_id is None:  # asked before the first chunk: chosen now, and kept
            self._message_id = message_id(None)
        return self._message_id

    def error_frame(self, error: GatewayError) -> bytes:
        return named_frame("error", error.anthropic_body())

    def chunk(self, chunk: dict[str, Any]) -> Events:
        events: Events = []
        if not self.started:
            events.append(("message_start", self._start(chunk)))
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # Anthropic's answer has one choice
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self.open_kind != "text":
                    events += self._open({"type": "text", "text": ""}, "text")
                events.append(self._delta({"type": "text_delta", "text": text}, self.index))
            for call in delta.get("tool_calls") or ():
                events += self._tool_call(call)
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]
        return events

    def close(self, usage: Usage, cost: Decimal) -> Events:
        events: Events = []
        if not self.started:
            events.append(("message_start", self._start({})))
        events += self._close_block()
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": STOP_REASONS.get(str(self.finish), "end_turn"),
                        "stop_sequence": None,
                    },
                    "usage": anthropic_usage(usage, cost),
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        return events

    def _chosen_id(self, chunk: dict[str, Any]) -> str:
        self._message_id = message_id(chunk.get("id"))
        return self._message_id

    def _start(self, chunk: dict[str, Any]) -> dict[str, Any]:
        self.started = True
        return {
            "type": "message_start",
            "message": {
                "id": self._message_id or self._chosen_id(chunk),
                "type": "message",
                "role": "assistant",
                "model": self.card.title,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                # The upstream reports usage at the end; message_delta carries all of it.
                "usage": {"input_tokens": 0, "output_tokens": 0},
            },
        }

    def _tool_call(self, call: Any) -> Events:
        if not isinstance(call, dict):
            return []
        events: Events = []
        position = call.get("index", 0)
        function = call.get("function") or {}
        if position not in self.tool_blocks:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{position}",
                "name": function.get("name") or "",
                "input": {},
            }
            events += self._open(block, "tool_use")
            self.tool_blocks[position] = self.index
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            partial = {"type": "input_json_delta", "partial_json": arguments}
            events.append(self._delta(partial, self.tool_blocks[position]))
        return events

    def _open(self, block: dict[str, Any], kind: str) -> Events:
        events = self._close_block()
        self.index += 1
        self.open_kind = kind
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": self.index, "content_block": block},
            )
        )
        return events

    def _close_block(self) -> Events:
        if self.open_kind is None:
            return []
        self.open_kind = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self.index})]

    @staticmethod
    def _delta(delta: dict[str, Any], index: int) -> tuple[str, dict[str, Any]]:
        return (
            "content_block_delta",
            {"type": "content_block_delta", "index": index, "delta": delta},
        )
