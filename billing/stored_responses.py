"""Stored responses' reads and writes (billing/response_models.py), for the gateway's
/v1/responses: saving one, the context a continuation reads (every response it continues, their
input and output items in order), items by id for `item_reference`, one response whole, and
deleting one. Every read and write is scoped to the account: another account's id is the same
as nobody's."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from django.db import transaction
from django.db.models import QuerySet

from billing.response_models import StoredResponse, StoredResponseItem

# A conversation longer than this many responses is refused a continuation (each response
# names the ones before it, so an endless chain would grow every row without bound).
MAX_CHAIN = 10_000


def _item_id(item: dict[str, Any]) -> str:
    item_id = item.get("id")
    return item_id if isinstance(item_id, str) and len(item_id) <= 64 else ""


def _owned(account_id: int, response_id: str) -> "QuerySet[StoredResponse]":
    """The account's response of that id (empty for any other account's)."""
    return StoredResponse.objects.filter(account_id=account_id, response_id=response_id)


def stored_response_save(
    *,
    account_id: int,
    key_id: int,
    response: dict[str, Any],
    input_items: Sequence[dict[str, Any]],
    chain: Sequence[str],
    created_at: datetime,
) -> None:
    """Keep a response object (its `output` as items) and the input items it was made from."""
    head = {name: value for name, value in response.items() if name != "output"}
    with transaction.atomic():
        stored = StoredResponse.objects.create(
            response_id=response["id"],
            account_id=account_id,
            key_id=key_id,
            created_at=created_at,
            model=str(response.get("model") or "")[:200],
            previous_response_id=chain[-1] if chain else "",
            chain=list(chain[-MAX_CHAIN:]),
            response=orjson.dumps(head).decode(),
        )
        items = [
            StoredResponseItem(
                response=stored, output=output, position=position, item_id=_item_id(item), item=item
            )
            for output, listed in ((False, input_items), (True, response.get("output") or ()))
            for position, item in enumerate(listed)
        ]
        StoredResponseItem.objects.bulk_create(items)


def stored_response_context(
    *, account_id: int, response_id: str
) -> tuple[list[str], list[dict[str, Any]]] | None:
    """(the chain a continuation of this response has: the ids it continues and its own; the
    input and output items of each, in order), or None when the account has no such response.
    A response deleted from the middle of a chain leaves its items out."""
    found = _owned(account_id, response_id).values_list("chain", flat=True).first()
    if found is None:
        return None
    chain = [*found, response_id]
    rank = {name: index for index, name in enumerate(chain)}
    rows = StoredResponseItem.objects.filter(
        response__account_id=account_id, response__response_id__in=chain
    ).values_list("response__response_id", "output", "position", "item")
    ordered = sorted(rows, key=lambda row: (rank[row[0]], row[1], row[2]))
    return chain, [item for *_, item in ordered]


def stored_items_find(*, account_id: int, item_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The account's stored items by id; an id seen more than once (a client that sent an item
    back with its id) is the output item if there is one, else the newest."""
    rows = (
        StoredResponseItem.objects.filter(response__account_id=account_id, item_id__in=item_ids)
        .order_by("-output", "-pk")
        .values_list("item_id", "item")
    )
    found: dict[str, dict[str, Any]] = {}
    for item_id, item in rows:
        found.setdefault(item_id, item)
    return found


def stored_response_get(
    *, account_id: int, response_id: str
) -> tuple[str, list[dict[str, Any]]] | None:
    """(the response object without its output, as JSON text; its output items), or None."""
    stored = _owned(account_id, response_id).first()
    if stored is None:
        return None
    output = list(
        stored.items.filter(output=True).order_by("position").values_list("item", flat=True)
    )
    return stored.response, output


def stored_response_input_items(
    *, account_id: int, response_id: str
) -> list[dict[str, Any]] | None:
    """The input items the response was made from, in order, or None."""
    stored = _owned(account_id, response_id).values_list("pk", flat=True).first()
    if stored is None:
        return None
    return list(
        StoredResponseItem.objects.filter(response_id=stored, output=False)
        .order_by("position")
        .values_list("item", flat=True)
    )


def stored_response_delete(*, account_id: int, response_id: str) -> bool:
    """Delete the response and its items; whether the account had it."""
    deleted, _ = _owned(account_id, response_id).delete()
    return deleted > 0
