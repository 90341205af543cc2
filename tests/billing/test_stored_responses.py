"""Stored responses' services (billing/stored_responses.py): a continuation's context in order
across a chain, items found by id within the account only, and retention with the items."""

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import User
from billing.response_models import StoredResponse, StoredResponseItem
from billing.retention import stored_responses_prune
from billing.stored_responses import (
    stored_items_find,
    stored_response_context,
    stored_response_delete,
    stored_response_get,
    stored_response_save,
)
from billing.tasks import stored_responses_retention

pytestmark = pytest.mark.django_db


def message(item_id: str, text: str, role: str = "user") -> dict[str, Any]:
    return {"id": item_id, "type": "message", "role": role, "content": text}


def save(account: User, name: str, chain: list[str], days_ago: float = 0) -> None:
    response = {
        "id": name,
        "object": "response",
        "model": "Claude Haiku 4.5",
        "output": [message(f"out_{name}", f"answer {name}", "assistant")],
    }
    stored_response_save(
        account_id=account.pk,
        key_id=1,
        response=response,
        input_items=[message(f"in_{name}", f"question {name}")],
        chain=chain,
        created_at=timezone.now() - timedelta(days=days_ago),
    )


def test_a_chain_reads_every_turn_in_order() -> None:
    ada = User.objects.create_user("ada@example.com")
    save(ada, "resp_1", [])
    save(ada, "resp_2", ["resp_1"])
    save(ada, "resp_3", ["resp_1", "resp_2"])
    found = stored_response_context(account_id=ada.pk, response_id="resp_3")
    assert found is not None
    chain, items = found
    assert chain == ["resp_1", "resp_2", "resp_3"]
    assert [item["content"] for item in items] == [
        "question resp_1",
        "answer resp_1",
        "question resp_2",
        "answer resp_2",
        "question resp_3",
        "answer resp_3",
    ]
    assert StoredResponse.objects.get(response_id="resp_3").previous_response_id == "resp_2"
    # A response deleted from the middle leaves its own items out, the rest in order.
    assert stored_response_delete(account_id=ada.pk, response_id="resp_2")
    _, items = stored_response_context(account_id=ada.pk, response_id="resp_3") or ([], [])
    assert [item["content"] for item in items][2:] == ["question resp_3", "answer resp_3"]


def test_another_accounts_responses_and_items_are_not_found() -> None:
    ada, bob = User.objects.create_user("ada@example.com"), User.objects.create_user("b@x.org")
    save(ada, "resp_1", [])
    assert stored_response_context(account_id=bob.pk, response_id="resp_1") is None
    assert stored_response_get(account_id=bob.pk, response_id="resp_1") is None
    assert stored_items_find(account_id=bob.pk, item_ids=["out_resp_1"]) == {}
    assert not stored_response_delete(account_id=bob.pk, response_id="resp_1")
    found = stored_items_find(account_id=ada.pk, item_ids=["out_resp_1", "in_resp_1", "nope"])
    assert set(found) == {"out_resp_1", "in_resp_1"}
    head, output = stored_response_get(account_id=ada.pk, response_id="resp_1") or ("", [])
    assert '"output"' not in head
    assert output == [message("out_resp_1", "answer resp_1", "assistant")]


def test_retention_deletes_old_responses_with_their_items(settings: Any) -> None:
    ada = User.objects.create_user("ada@example.com")
    save(ada, "resp_old", [], days_ago=31)
    save(ada, "resp_older", [], days_ago=400)
    save(ada, "resp_new", ["resp_old"], days_ago=29)
    assert stored_responses_prune(now=timezone.now(), days=0) == 0  # 0 keeps them
    assert stored_responses_prune(now=timezone.now(), days=30, batch_size=1) == 2
    assert list(StoredResponse.objects.values_list("response_id", flat=True)) == ["resp_new"]
    assert set(StoredResponseItem.objects.values_list("item_id", flat=True)) == {
        "in_resp_new",
        "out_resp_new",
    }
    settings.TOKENBYTE_RESPONSE_RETENTION_DAYS = 1
    assert stored_responses_retention() == 1  # the hourly beat task
    assert not StoredResponse.objects.exists()
