"""Another provider's answer, in the chat core's shape, as a Responses API response object, or
(ResponsesEventWriter) its stream as the Responses API's events in the documented order, each
numbered with its sequence_number.

Output items: a `reasoning` item where the provider returned thinking (its text as a summary;
with `include: ["reasoning.encrypted_content"]` the provider's signed data as our opaque blob,
reasoning_blob.py), then the `message`, then one `function_call` per tool call (a
`custom_tool_call` for the client's custom tools).
"""

import time
import uuid
from decimal import Decimal
from typing import Any

import orjson

from billing.usage import Usage
from proxy.gateway.dialects.reasoning_blob import write_reasoning
from proxy.gateway.dialects.responses_functions import CUSTOM_INPUT, ToolNames
from proxy.gateway.routing import Card
from proxy.providers.openai_responses import responses_usage

# Chat finish reasons that end a response early, as the Responses API says why.
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
ENCRYPTED = "reasoning.encrypted_content"

Events = list[tuple[str, dict[str, Any]]]


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _item_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class ResponseShape:
    """The response object's fields that echo the request, and the ids it is known by."""

    def __init__(
        self,
        body: dict[str, Any],
        card: Card,
        names: ToolNames,
        *,
        stored: bool = False,
        previous: str | None = None,
    ) -> None:
        self.body = body
        self.card = card
        self.names = names
        include = body.get("include")
        self.encrypted = isinstance(include, list) and ENCRYPTED in include
        # Kept for a continuation (stored_responses.py): with the provider's signed reasoning,
        # whether or not the client asked to see it.
        self.stored = stored
        self.previous = previous
        self.blobs: dict[str, str] = {}  # reasoning item id -> its blob, kept but not shown
        self.hidden: list[dict[str, Any]] = []  # reasoning items kept but not shown
        self.id = _item_id("resp")
        self.created_at = int(time.time())

    def kept(self, response: dict[str, Any]) -> dict[str, Any]:
        """The response as stored: its reasoning items with the signed data a continuation
        sends back to the provider."""
        blobs = self.blobs
        output = [
            {**item, "encrypted_content": blobs[item["id"]]} if item.get("id") in blobs else item
            for item in response.get("output") or ()
        ]
        return {**response, "output": output + self.hidden}

    def response(
        self,
        status: str,
        output: list[dict[str, Any]],
        usage: dict[str, Any] | None,
        incomplete: str | None = None,
    ) -> dict[str, Any]:
        body = self.body
        reasoning = _object(body.get("reasoning"))
        text = _object(body.get("text"))
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": body.get("max_tool_calls"),
            "model": self.card.title,
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": self.previous,
            "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
            "service_tier": "default",
            "store": self.stored,
            "temperature": body.get("temperature", 1.0),
            "text": {"format": {"type": "text"}, **text},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation", "disabled"),
            "usage": usage,
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
        }

    def reasoning_item(
        self, item_id: str, text: str, blocks: list[dict[str, Any]], signatures: dict[str, str]
    ) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": item_id,
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": text}] if text else [],
        }
        if self.encrypted or self.stored:
            blob = write_reasoning(self.card.provider, blocks, signatures)
            if self.encrypted:
                item["encrypted_content"] = blob
            elif blob is not None:
                self.blobs[item_id] = blob
        return item

    def call_item(
        self, item_id: str, call_id: str, name: str, arguments: str, status: str = "completed"
    ) -> dict[str, Any]:
        space, own = self.names.namespaced.get(name, (None, name))
        item: dict[str, Any] = {"id": item_id, "status": status, "call_id": call_id, "name": own}
        if space is not None:
            item["namespace"] = space
        if name in self.names.custom:
            item["type"] = "custom_tool_call"
            item["input"] = custom_input(arguments) if status == "completed" else ""
        else:
            item["type"] = "function_call"
            item["arguments"] = arguments
        return item


def custom_input(arguments: str) -> str:
    """A custom tool's text from the function arguments it was asked for as."""
    try:
        held = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return arguments
    value = held.get(CUSTOM_INPUT) if isinstance(held, dict) else None
    return value if isinstance(value, str) else arguments


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [output_text(text)] if status == "completed" else [],
    }


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def signatures_of(calls: list[Any]) -> dict[str, str]:
    """Gemini's thought signatures, by call id."""
    found = {}
    for call in calls:
        google = ((call.get("extra_content") or {}).get("google") or {}) if call else {}
        signature = google.get("thought_signature") if isinstance(google, dict) else None
        if isinstance(signature, str) and isinstance(call.get("id"), str):
            found[call["id"]] = signature
    return found


def response_from_completion(
    shape: ResponseShape, data: dict[str, Any], usage: Usage, cost: Decimal
) -> dict[str, Any]:
    choice = (data.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    calls = [call for call in message.get("tool_calls") or () if isinstance(call, dict)]
    output: list[dict[str, Any]] = []
    thinking = message.get("reasoning_content")
    blocks = message.get("thinking_blocks") or []
    signatures = signatures_of(calls)
    if thinking or blocks or signatures:
        text = thinking if isinstance(thinking, str) else ""
        output.append(shape.reasoning_item(_item_id("rs"), text, blocks, signatures))
    content = message.get("content")
    if (isinstance(content, str) and content) or not calls:
        output.append(message_item(_item_id("msg"), content if isinstance(content, str) else ""))
    for call in calls:
        function = call.get("function") or {}
        output.append(
            shape.call_item(
                _item_id("fc"),
                str(call.get("id") or _item_id("call")),
                str(function.get("name") or ""),
                str(function.get("arguments") or ""),
            )
        )
    incomplete = INCOMPLETE.get(str(choice.get("finish_reason")))
    status = "incomplete" if incomplete else "completed"
    return shape.response(status, output, responses_usage(None, usage, cost), incomplete)


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
            events += self._start({"id": _item_id("rs"), "type": "reasoning", "summary": []})
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
            events += self._start(message_item(_item_id("msg"), "", status="in_progress"))
            events.append(
                self._event(
                    "response.content_part.added",
                    {**self._at(), "content_index": 0, "part": output_text("")},
                )
            )
        self.text.append(text)
        events.append(
            self._event(
                "response.output_text.delta",
                {**self._at(), "content_index": 0, "delta": text, "logprobs": []},
            )
        )
        return events

    def _call(self, call: dict[str, Any]) -> Events:
        events: Events = []
        position = call.get("index", 0)
        function = call.get("function") or {}
        self.signatures.update(signatures_of([call]))
        if position not in self.calls:
            item = self.shape.call_item(
                _item_id("fc"),
                str(call.get("id") or _item_id("call")),
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
                    {**at, "content_index": 0, "part": output_text(text)},
                ),
            ]
            done = message_item(item["id"], text)
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
            events += self._start(message_item(_item_id("msg"), "", status="in_progress"))
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
        item = shape.reasoning_item(_item_id("rs"), "", blocks, signatures)
        if not shape.encrypted:  # kept for a continuation only
            shape.hidden.append({**item, "encrypted_content": shape.blobs.pop(item["id"])})
            return []
        self.output.append(item)
        index = len(self.output) - 1
        return [
            self._event("response.output_item.added", {"output_index": index, "item": item}),
            self._event("response.output_item.done", {"output_index": index, "item": item}),
        ]

    def error_event(
        self, code: str | None, message: str, param: str | None
    ) -> tuple[str, dict[str, Any]]:
        return self._event("error", {"code": code, "message": message, "param": param})
