"""Another provider's answer, in the chat core's shape, as a Responses API response object (its
stream as the Responses API's events: responses_events.py).

Output items: a `reasoning` item where the provider returned thinking (its text as a summary;
with `include: ["reasoning.encrypted_content"]` the provider's signed data as our opaque blob,
reasoning_blob.py), a `web_search_call` per search the provider ran (Claude's), then the
`message` (its sources as `url_citation` annotations), then one `function_call` per tool call
(a `custom_tool_call` for the client's custom tools).
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


def item_id(prefix: str) -> str:
    """A new item's id: its type's prefix and 32 hex digits."""
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
        self.id = item_id("resp")
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


def message_item(
    item_id: str,
    text: str,
    status: str = "completed",
    annotations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [output_text(text, annotations)] if status == "completed" else [],
    }


def output_text(text: str, annotations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": annotations or [], "logprobs": []}


def url_annotation(annotation: Any, base: int = 0) -> dict[str, Any] | None:
    """A chat url_citation annotation as the Responses API's, its span moved back by `base`
    (where its message item starts in the chat content); None for any other kind."""
    if not isinstance(annotation, dict) or annotation.get("type") != "url_citation":
        return None
    cited = annotation.get("url_citation")
    if not isinstance(cited, dict) or not isinstance(cited.get("url"), str):
        return None
    start, end = cited.get("start_index"), cited.get("end_index")
    if not isinstance(start, int) or not isinstance(end, int):
        return None
    return {
        "type": "url_citation",
        "start_index": max(start - base, 0),
        "end_index": max(end - base, 0),
        "url": cited["url"],
        "title": str(cited.get("title") or ""),
    }


def search_item(item_id: str, call: Any, status: str | None = None) -> dict[str, Any]:
    """A web search the provider ran (the chat core's web_search_calls entry) as an item."""
    call = _object(call)
    query = call.get("query")
    final = "failed" if call.get("status") == "failed" else "completed"
    return {
        "id": item_id,
        "type": "web_search_call",
        "status": status or final,
        "action": {"type": "search", "query": query if isinstance(query, str) else ""},
    }


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
        output.append(shape.reasoning_item(item_id("rs"), text, blocks, signatures))
    output += [search_item(item_id("ws"), call) for call in message.get("web_search_calls") or ()]
    content = message.get("content")
    if (isinstance(content, str) and content) or not calls:
        found = [url_annotation(each) for each in message.get("annotations") or ()]
        annotations = [each for each in found if each is not None]
        text = content if isinstance(content, str) else ""
        output.append(message_item(item_id("msg"), text, annotations=annotations))
    for call in calls:
        function = call.get("function") or {}
        output.append(
            shape.call_item(
                item_id("fc"),
                str(call.get("id") or item_id("call")),
                str(function.get("name") or ""),
                str(function.get("arguments") or ""),
            )
        )
    incomplete = INCOMPLETE.get(str(choice.get("finish_reason")))
    status = "incomplete" if incomplete else "completed"
    return shape.response(status, output, responses_usage(None, usage, cost), incomplete)
