"""Stored responses in a request (pure): `previous_response_id`'s context put in front of the
input, `item_reference` items replaced by the stored items they name, this request's input as
it is stored (every item with an id), and the pages of GET /v1/responses/{id}/input_items.
The reads themselves are the route's (routes/responses.py); README.md "Stored responses" has
the rules."""

import uuid
from typing import Any

import orjson

from proxy.gateway.dialects.reasoning_blob import PREFIX as REASONING_BLOB_PREFIX
from proxy.gateway.errors import InvalidRequest

# Input item ids the gateway gives items sent without one, by type (OpenAI's own prefixes).
ID_PREFIXES = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "custom_tool_call": "ctc",
    "custom_tool_call_output": "ctco",
    "reasoning": "rs",
}
PAGE_DEFAULT = 20
PAGE_MAX = 100


def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's input as items: a string input as one user message."""
    given = body.get("input")
    if isinstance(given, str):
        return [{"type": "message", "role": "user", "content": given}]
    return list(given) if isinstance(given, list) else []


def references(items: list[dict[str, Any]]) -> list[str]:
    """The ids the input's item references name, in order."""
    found = []
    for index, item in enumerate(items):
        if item.get("type") == "item_reference":
            item_id = item.get("id")
            if not isinstance(item_id, str) or not item_id:
                raise InvalidRequest(
                    f"input[{index}].id: an item reference needs the id of a stored item.",
                    param=f"input[{index}].id",
                    code="invalid_value",
                )
            found.append(item_id)
    return found


def resolved(
    items: list[dict[str, Any]], stored: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The items with each reference replaced by the item it names; a reference to no item of
    this account's is a 400, as OpenAI answers one to an item it does not keep."""
    out = []
    for index, item in enumerate(items):
        if item.get("type") != "item_reference":
            out.append(item)
            continue
        found = stored.get(item["id"])
        if found is None:
            raise InvalidRequest(
                f"Item with id {item['id'][:64]!r} not found: no stored response of this "
                "account holds it (responses are stored when sent with store: true, and kept "
                "for a set time). Send the item itself in 'input'.",
                param=f"input[{index}]",
                code="item_not_found",
            )
        out.append(found)
    return out


def previous_not_found(response_id: str) -> InvalidRequest:
    return InvalidRequest(
        f"Previous response with id {response_id[:64]!r} not found.",
        param="previous_response_id",
        code="previous_response_not_found",
    )


def with_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items as stored, in OpenAI's stored shape: each with an id (given one where it came
    without) and a type, a message's text content as a list of parts."""
    out = []
    for item in items:
        kind = item.get("type", "message")
        stored = {"id": f"{ID_PREFIXES.get(kind, 'item')}_{uuid.uuid4().hex}", "type": kind}
        stored.update((name, value) for name, value in item.items() if value is not None)
        if not stored["id"]:  # sent as ""
            stored["id"] = f"{ID_PREFIXES.get(kind, 'item')}_{uuid.uuid4().hex}"
        if kind == "message" and isinstance(item.get("content"), str):
            part = "output_text" if item.get("role") == "assistant" else "input_text"
            stored["content"] = [{"type": part, "text": item["content"]}]
        out.append(stored)
    return out


def for_openai(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored items as input to an OpenAI card: without their ids (OpenAI would look ids up in
    its own storage) and without reasoning items, which carry another provider's signed
    thinking in the gateway's own blob (reasoning_blob.py) that OpenAI cannot read."""
    out = []
    for item in items:
        if item.get("type") == "reasoning":
            encrypted = item.get("encrypted_content")
            if not isinstance(encrypted, str) or encrypted.startswith(REASONING_BLOB_PREFIX):
                continue
        out.append({name: value for name, value in item.items() if name != "id"})
    return out


def stored_body(head: str, output: list[dict[str, Any]], *, encrypted: bool) -> bytes:
    """A stored response's JSON (its head is JSON text, output aside), its reasoning items'
    signed data left out unless the client asked for it (include=reasoning.encrypted_content)."""
    if not encrypted:
        output = [
            {name: value for name, value in item.items() if name != "encrypted_content"}
            for item in output
        ]
    return head.encode()[:-1] + b',"output":' + orjson.dumps(output) + b"}"


def page(
    items: list[dict[str, Any]], *, after: str | None, limit: int, order: str
) -> dict[str, Any]:
    """One page of a list of items, as OpenAI's list endpoints give it (`order` desc: newest
    first; `after`: the id of the last item of the page before)."""
    ordered = items[::-1] if order == "desc" else items
    start = 0
    if after is not None:
        ids = [item.get("id") for item in ordered]
        start = ids.index(after) + 1 if after in ids else len(ordered)
    data = ordered[start : start + limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0].get("id") if data else None,
        "last_id": data[-1].get("id") if data else None,
        "has_more": start + limit < len(ordered),
    }
