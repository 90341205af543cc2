import re
from decimal import Decimal
from urllib.parse import quote

import httpx
import openai
import pytest

from proxy.models import ModelCard
from tests.conftest import LiveServer

pytestmark = pytest.mark.slow


def test_models_list_has_the_catalog_in_openai_format(api: httpx.Client) -> None:
    response = api.get("/v1/models")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert re.fullmatch(r"req_[0-9a-f]{32}", response.headers["x-request-id"])
    body = response.json()
    assert body["object"] == "list"
    models = {entry["id"]: entry for entry in body["data"]}
    assert len(models) >= 25
    assert {entry["provider"] for entry in models.values()} >= {
        "openai",
        "anthropic",
        "gemini",
        "mistral",
    }
    sonnet = models["Claude Sonnet 4.5"]
    assert sonnet["object"] == "model"
    assert sonnet["owned_by"] == "anthropic"
    assert sonnet["type"] == "chat"
    assert sonnet["upstream_id"] == "claude-sonnet-4-5"
    assert sonnet["context_length"] == 200000
    assert sonnet["max_output_tokens"] == 64000
    assert sonnet["pricing"] == {
        "input": "3.00",
        "output": "15.00",
        "cache_read": "0.30",
        "cache_write": "3.75",
    }
    assert isinstance(sonnet["created"], int)
    embedding = models["text-embedding-3-small"]
    assert embedding["type"] == "embedding"
    assert Decimal(embedding["pricing"]["input"]) == Decimal("0.02")


def test_models_work_with_the_official_openai_sdk(live_gateway: LiveServer) -> None:
    client = openai.OpenAI(base_url=f"{live_gateway.url}/v1", api_key="unused-for-public-models")
    ids = [model.id for model in client.models.list()]
    assert "GPT-4o" in ids
    model = client.models.retrieve("Claude Sonnet 4.5")
    assert model.id == "Claude Sonnet 4.5"
    assert model.owned_by == "anthropic"
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("Claude Sonet 4.5")
    assert "Claude Sonnet 4.5" in str(caught.value)


@pytest.mark.parametrize(
    "name",
    ["Claude Sonnet 4.5", "claude sonnet 4.5", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929"],
)
def test_model_retrieve_by_title_or_alias(api: httpx.Client, name: str) -> None:
    response = api.get(f"/v1/models/{quote(name)}")
    assert response.status_code == 200
    assert response.json()["id"] == "Claude Sonnet 4.5"


def test_unknown_model_is_404_naming_the_closest_titles(api: httpx.Client) -> None:
    response = api.get(f"/v1/models/{quote('gpt4o mini')}")
    assert response.status_code == 404
    assert "x-request-id" in response.headers
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "model_not_found"
    assert set(error) == {"message", "type", "code", "param"}
    assert "'GPT-4o mini'" in error["message"]


def test_every_response_carries_a_request_id_and_keeps_a_clients_own(api: httpx.Client) -> None:
    for method, path in [
        ("GET", "/v1/models"),
        ("GET", "/v1/nope"),
        ("POST", "/v1/models"),
        ("GET", "/healthz"),
    ]:
        response = api.request(method, path)
        assert response.headers["x-request-id"].startswith("req_"), (method, path)
    kept = api.get("/v1/models", headers={"x-request-id": "client-trace-0001"})
    assert kept.headers["x-request-id"] == "client-trace-0001"
    hostile = api.get("/v1/models", headers={"x-request-id": "bad id with spaces\tand tabs"})
    assert hostile.headers["x-request-id"].startswith("req_")
    wrong = api.post("/v1/models")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET"
    unknown = api.get("/v1/nope")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_url"


def test_catalog_changes_reach_the_running_gateway(
    live_gateway: LiveServer, api: httpx.Client
) -> None:
    card = ModelCard.objects.get(title="Mistral Small")
    card.active = False
    card.save()
    live_gateway.wait_for_routing(lambda routing: routing.resolve("Mistral Small") is None)
    assert api.get(f"/v1/models/{quote('Mistral Small')}").status_code == 404
    assert "Mistral Small" not in [m["id"] for m in api.get("/v1/models").json()["data"]]
