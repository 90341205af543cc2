"""Another provider's stream, as the chat core's chunks, as the Responses API's events in the
documented order, each numbered with its sequence_number: response.created and in_progress;
per output item output_item.added, its deltas (reasoning summary text, output text and its
annotations, function call arguments, a custom tool's input; a web search's in_progress,
searching and completed), output_item.done; last response.completed or
response.incomplete, priced, once the call is settled, or, when it failed after it began,
`error` and response.failed (responses_output.py makes the items)."""

from decimal import Decimal
from typing import Any

from billing.usage import Usage
from proxy.gateway.dialects.responses_output import (
    INCOMPLETE,
    Events,
    ResponseShape,
    item_id,
    message_item,
    output_text,
    search_item,
    signatures_of,
    url_annotation,
)
from proxy.gateway.errors import GatewayError
from proxy.gateway.sse import named_frames
from proxy.providers.openai_responses import responses_usage


class ResponsesEventWriter:
    """chat.completion.chunk dicts in, Responses API events out."""

    def __init__(self, shape: ResponseShape) -> None:
        self.shape = shape
        self.sequence = -1
        self.started = False
        self.output: list[dict[str, Any]] = []  # the items done so far
        self.open: dict[str, Any] | None = None  # the item being streamed
        self.text: list[str] = []  # its text, or its arguments
        self.blocks: list[dict[str, Any]] = []
        self.signatures: dict[str, str] = {}
        self.calls: dict[int, dict[str, Any]] = {}  # chat tool call index -> its open item
        self.sealed: tuple[int, set[str]] = (0, set())  # what a done reasoning item carries
        self.finish: str | None = None
        self.content_seen = 0  # characters of chat content so far
        self.message_base = 0  # where the open message item starts in it
        self.annotations: list[dict[str, Any]] = []  # the open message item's

    def _event(self, name: str, data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.sequence += 1
        return name, {"type": name, **data, "sequence_number": self.sequence}

    def _opening(self) -> Events:
        self.started = True
        opening = self.shape.response("in_progress", [], None)
        return [
            self._event("response.created", {"response": opening}),
            self._event("response.in_progress", {"response": opening}),
        ]

    def chunk(self, chunk: dict[str, Any]) -> Events:
        events: Events = [] if self.started else self._opening()
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            thinking = delta.get("reasoning_content")
            if isinstance(thinking, str) and thinking:
                events += self._reasoning(thinking)
            blocks = delta.get("thinking_blocks")
            if isinstance(blocks, list):
                self.blocks += [block for block in blocks if isinstance(block, dict)]
            text = delta.get("content")
            if isinstance(text, str) and text:
                events += self._text(text)
            for annotation in delta.get("annotations") or ():
                events += self._annotation(annotation)
            for call in delta.get("web_search_calls") or ():
                events += self._search(call)
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    events += self._call(call)
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]
        return events

    def _at(self) -> dict[str, Any]:
        item_id = self.open["id"] if self.open is not None else ""
        return {"item_id": item_id, "output_index": len(self.output)}

    def _start(self, item: dict[str, Any]) -> Events:
        events = self._close()
        self.open, self.text = item, []
        events.append(
            self._event(
                "response.output_item.added", {"output_index": len(self.output), "item": item}
            )
        )
        return events

    def _reasoning(self, text: str) -> Events:
        events: Events = []
        if self.open is None or self.open["type"] != "reasoning":
            events += self._start({"id": item_id("rs"), "type": "reasoning", "summary": []})
            part = {"type": "summary_text", "text": ""}
            events.append(
                self._event(
                    "response.reasoning_summary_part.added",
                    {**self._at(), "summary_index": 0, "part": part},
                )
            )
        self.text.append(text)
        events.append(
            self._event(
                "response.reasoning_summary_text.delta",
                {**self._at(), "summary_index": 0, "delta": text},
            )
        )
        return events

    def _text(self, text: str) -> Events:
        events: Events = []
        if self.open is None or self.open["type"] != "message":
            events += self._start(message_item(item_id("msg"), "", status="in_progress"))
            self.message_base, self.annotations = self.content_seen, []
            events.append(
                self._event(
                    "response.content_part.added",
                    {**self._at(), "content_index": 0, "part": output_text("")},
                )
            )
        self.text.append(text)
        self.content_seen += len(text)
        events.append(
            self._event(
                "response.output_text.delta",
                {**self._at(), "content_index": 0, "delta": text, "logprobs": []},
            )
        )
        return events

    def _annotation(self, annotation: Any) -> Events:
        """A source the open message's text cites (one that comes with no open message, which
        chat translators never send, has no text to point into and is left out)."""
        found = url_annotation(annotation, self.message_base)
        if found is None or self.open is None or self.open["type"] != "message":
            return []
        self.annotations.append(found)
        data = {"content_index": 0, "annotation_index": len(self.annotations) - 1}
        return [
            self._event(
                "response.output_text.annotation.added",
                {**self._at(), **data, "annotation": found},
            )
        ]

    def _search(self, call: Any) -> Events:
        """A web search the provider ran, whole: its item opened, searched and done."""
        done = search_item(item_id("ws"), call)
        events = self._start({**done, "status": "in_progress"})
        self.open = done  # _close sends it as it ended
        for stage in ("in_progress", "searching", "completed"):
            if stage == "completed" and done["status"] != "completed":
                break
            events.append(self._event(f"response.web_search_call.{stage}", self._at()))
        return events + self._close()

    def _call(self, call: dict[str, Any]) -> Events:
        events: Events = []
        position = call.get("index", 0)
        function = call.get("function") or {}
        self.signatures.update(signatures_of([call]))
        if position not in self.calls:
            item = self.shape.call_item(
                item_id("fc"),
                str(call.get("id") or item_id("call")),
                str(function.get("name") or ""),
                "",
                status="in_progress",
            )
            events += self._start(item)
            self.calls[position] = item
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments and self.open is self.calls[position]:
            self.text.append(arguments)
            if self.open["type"] == "function_call":
                events.append(
                    self._event(
                        "response.function_call_arguments.delta",
                        {**self._at(), "delta": arguments},
                    )
                )
        return events

    def _close(self) -> Events:
        item, self.open = self.open, None
        if item is None:
            return []
        at = {"item_id": item["id"], "output_index": len(self.output)}
        text = "".join(self.text)
        kind = item["type"]
        events: Events = []
        if kind == "reasoning":
            part = {"type": "summary_text", "text": text}
            events += [
                self._event(
                    "response.reasoning_summary_text.done", {**at, "summary_index": 0, "text": text}
                ),
                self._event(
                    "response.reasoning_summary_part.done", {**at, "summary_index": 0, "part": part}
                ),
            ]
            done = self.shape.reasoning_item(item["id"], text, self.blocks, self.signatures)
            self.sealed = (len(self.blocks), set(self.signatures))
        elif kind == "message":
            events += [
                self._event(
                    "response.output_text.done",
                    {**at, "content_index": 0, "text": text, "logprobs": []},
                ),
                self._event(
                    "response.content_part.done",
                    {**at, "content_index": 0, "part": output_text(text, self.annotations)},
                ),
            ]
            done = message_item(item["id"], text, annotations=self.annotations)
        elif kind == "web_search_call":
            done = item
        else:
            done = self.shape.call_item(item["id"], item["call_id"], item["name"], text)
            if kind == "custom_tool_call":
                events += [
                    self._event(
                        "response.custom_tool_call_input.delta", {**at, "delta": done["input"]}
                    ),
                    self._event(
                        "response.custom_tool_call_input.done", {**at, "input": done["input"]}
                    ),
                ]
            else:
                events.append(
                    self._event("response.function_call_arguments.done", {**at, "arguments": text})
                )
        self.output.append(done)
        events.append(
            self._event(
                "response.output_item.done", {"output_index": len(self.output) - 1, "item": done}
            )
        )
        return events

    def close(self, usage: Usage, cost: Decimal) -> Events:
        """The last events, once the call is settled: the response with its usage priced."""
        events: Events = [] if self.started else self._opening()
        events += self._close()
        if not self.output:
            events += self._start(message_item(item_id("msg"), "", status="in_progress"))
            events += self._close()
        events += self._seal_reasoning()
        incomplete = INCOMPLETE.get(str(self.finish))
        status = "incomplete" if incomplete else "completed"
        final = self.shape.response(
            status, self.output, responses_usage(None, usage, cost), incomplete
        )
        name = "response.incomplete" if incomplete else "response.completed"
        events.append(self._event(name, {"response": final}))
        return events

    def _seal_reasoning(self) -> Events:
        """The provider's signed data that came after the reasoning item was done (Gemini's
        signatures ride on the calls): one more reasoning item, so the client keeps it all."""
        shape = self.shape
        if not shape.encrypted and not shape.stored:
            return []
        count, keys = self.sealed
        blocks = self.blocks[count:]
        signatures = {k: v for k, v in self.signatures.items() if k not in keys}
        if not blocks and not signatures:
            return []
        item = shape.reasoning_item(item_id("rs"), "", blocks, signatures)
        if not shape.encrypted:  # kept for a continuation only
            shape.hidden.append({**item, "encrypted_content": shape.blobs.pop(item["id"])})
            return []
        self.output.append(item)
        index = len(self.output) - 1
        return [
            self._event("response.output_item.added", {"output_index": index, "item": item}),
            self._event("response.output_item.done", {"output_index": index, "item": item}),
        ]

    def response_id(self) -> str:
        return self.shape.id

    def error_frame(self, error: GatewayError) -> bytes:
        """A stream that failed after it began: the gateway's `error` event, then the response
        as failed (`response.failed`, its terminal event, with the items done so far), numbered
        after the last event the client saw."""
        data = {"code": error.code, "message": error.message, "param": error.param}
        events = [] if self.started else self._opening()
        events.append(self._event("error", data))
        failed = self.shape.response("failed", self.output, None)
        failed["error"] = {"code": error.code or "server_error", "message": error.message}
        events.append(self._event("response.failed", {"response": failed}))
        return named_frames(events)
