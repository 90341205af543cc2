"""GET /v1/models with an `anthropic-version` header answers in Anthropic's Models API shape
(what the anthropic SDK's models.list() and Claude Code's gateway model discovery read);
without it, OpenAI's list as before."""

from datetime import datetime
from urllib.parse import quote

import anthropic
import httpx
import pytest

from keys.services import key_mint
from keys.validation import KeySpec
from proxy.catalog.specs import card_spec_from_entry
from proxy.services import card_create
from tests.conftest import LiveServer

pytestmark = pytest.mark.slow

VERSION = {"anthropic-version": "2023-06-01"}


def chat_titles(live_gateway: LiveServer) -> list[str]:
    listed = httpx.get(f"{live_gateway.url}/v1/models").json()["data"]
    return [entry["id"] for entry in listed if entry["type"] == "chat"]


@pytest.fixture
def own_card(live_gateway: LiveServer) -> str:
    title = "Models Test Claude"
    entry = {
        "title": title,
        "provider": "anthropic",
        "upstream_id": "claude-models-test",
        "context_length": 123456,
        "max_output_tokens": 7890,
        "pricing": {"input": "1.00", "output": "2.00"},
    }
    card_create(spec=card_spec_from_entry(entry, "test"))
    live_gateway.wait_for_routing(lambda routing: routing.resolve(title) is not None)
    return title


def test_the_anthropic_sdk_lists_every_chat_title_page_by_page(
    live_gateway: LiveServer, own_card: str
) -> None:
    client = anthropic.Anthropic(base_url=live_gateway.url, api_key="not-a-tokenbyte-key")
    titles = chat_titles(live_gateway)
    assert len(titles) > 20
    assert [model.id for model in client.models.list()] == titles  # pages of 20 (the default)
    pages = client.models.list(limit=2)  # the SDK follows last_id with after_id
    models = list(pages)
    assert [model.id for model in models] == titles
    mine = next(model for model in models if model.id == own_card)
    assert (mine.type, mine.display_name) == ("model", own_card)
    assert isinstance(mine.created_at, datetime)
    assert (mine.max_input_tokens, mine.max_tokens) == (123456, 7890)
    one = client.models.retrieve(own_card)
    assert (one.id, one.display_name, one.type) == (own_card, own_card, "model")
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.models.retrieve("text-embedding-3-small")  # not a model the Messages API serves
    assert caught.value.body["error"]["type"] == "not_found_error"


def test_paging_by_limit_after_id_and_before_id(live_gateway: LiveServer, own_card: str) -> None:
    titles = chat_titles(live_gateway)
    url = f"{live_gateway.url}/v1/models"
    # What Claude Code asks for with gateway model discovery on.
    everything = httpx.get(url, params={"limit": 1000}, headers=VERSION).json()
    assert set(everything) == {"data", "has_more", "first_id", "last_id"}
    assert [entry["id"] for entry in everything["data"]] == titles
    assert (everything["has_more"], everything["first_id"], everything["last_id"]) == (
        False,
        titles[0],
        titles[-1],
    )
    entry = everything["data"][0]
    assert set(entry) >= {"type", "id", "display_name", "created_at"}
    assert datetime.fromisoformat(entry["created_at"].replace("Z", "+00:00")).tzinfo is not None
    first = httpx.get(url, params={"limit": 3}, headers=VERSION).json()
    assert [e["id"] for e in first["data"]] == titles[:3]
    assert (first["has_more"], first["last_id"]) == (True, titles[2])
    after = httpx.get(url, params={"limit": 2, "after_id": titles[2]}, headers=VERSION).json()
    assert [e["id"] for e in after["data"]] == titles[3:5]
    before = httpx.get(url, params={"limit": 2, "before_id": titles[3]}, headers=VERSION).json()
    assert [e["id"] for e in before["data"]] == titles[1:3]
    assert before["has_more"] is True  # titles[0] comes before
    last = httpx.get(url, params={"after_id": titles[-1]}, headers=VERSION).json()
    assert last == {"data": [], "has_more": False, "first_id": None, "last_id": None}
    for params, field in (
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"after_id": "No Such Model"}, "after_id"),
    ):
        response = httpx.get(url, params=params, headers=VERSION)
        assert response.status_code == 400, params
        body = response.json()
        assert body["type"] == "error"
        assert body["error"]["type"] == "invalid_request_error"
        assert body["error"]["message"].startswith(field)
    # Without the header: OpenAI's list, as before.
    plain = httpx.get(url).json()
    assert plain["object"] == "list"
    assert "has_more" not in plain


def test_a_keys_allowlist_holds_in_anthropics_shape(
    live_gateway: LiveServer, own_card: str, transactional_db: None
) -> None:
    from accounts.models import User

    owner = User.objects.create_user("models-anthropic@example.com")
    limited = key_mint(owner=owner, spec=KeySpec(name="one model", allowed_models=(own_card,)))
    client = anthropic.Anthropic(base_url=live_gateway.url, api_key=limited.secret)
    assert [model.id for model in client.models.list()] == [own_card]
    other = next(title for title in chat_titles(live_gateway) if title != own_card)
    bearer = httpx.get(
        f"{live_gateway.url}/v1/models/{quote(other)}",
        headers={**VERSION, "authorization": f"Bearer {limited.secret}"},
    )
    assert bearer.status_code == 403
    assert bearer.json()["error"]["type"] == "permission_error"
    bad_key = httpx.get(
        f"{live_gateway.url}/v1/models", headers={**VERSION, "x-api-key": "tb-" + "x" * 40}
    )
    assert bad_key.status_code == 401
    assert bad_key.json()["error"]["type"] == "authentication_error"
