"""Keys against the running gateway (the whole ASGI app under uvicorn in a thread)."""

import time
from datetime import UTC, datetime
from http import HTTPStatus
from urllib.parse import quote

import httpx
import openai
import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from keys.models import ApiKey
from keys.services import key_revoke
from tests.conftest import LiveServer
from tests.keys.conftest import Mint

pytestmark = pytest.mark.slow


def sdk(server: LiveServer, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=secret, max_retries=0)


def test_a_keys_model_list_has_only_its_allowed_models(
    live_gateway: LiveServer, owner: User, mint: Mint
) -> None:
    limited = mint(owner, allowed_models=("GPT-4o", "claude-sonnet-4-5"))
    client = sdk(live_gateway, limited.secret)
    assert sorted(model.id for model in client.models.list()) == ["Claude Sonnet 4.5", "GPT-4o"]
    assert client.models.retrieve("claude-sonnet-4-5").id == "Claude Sonnet 4.5"  # an alias
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.models.retrieve("Gemini 2.5 Flash")
    assert "may not use the model 'Gemini 2.5 Flash'" in str(caught.value)
    everything = [model.id for model in sdk(live_gateway, mint(owner).secret).models.list()]
    assert len(everything) >= 25


def test_bad_keys_get_401_in_openais_shape(
    live_gateway: LiveServer, api: httpx.Client, owner: User, mint: Mint
) -> None:
    revoked = mint(owner)
    key_revoke(key=revoked.key)
    expired = mint(owner, expires_at=datetime(2020, 1, 1, tzinfo=UTC))
    for secret, words in (
        ("tb-" + "x" * 43, "Incorrect API key"),
        (revoked.secret, "revoked"),
        (expired.secret, "expired"),
    ):
        response = api.get("/v1/models", headers={"Authorization": f"Bearer {secret}"})
        assert response.status_code == HTTPStatus.UNAUTHORIZED
        error = response.json()["error"]
        assert set(error) == {"message", "type", "code", "param"}
        assert error["code"] == "invalid_api_key"
        assert words in error["message"]
        assert secret not in error["message"]
        with pytest.raises(openai.AuthenticationError):
            sdk(live_gateway, secret).models.list()


def test_a_client_outside_the_keys_ip_ranges_gets_403(
    api: httpx.Client, owner: User, mint: Mint
) -> None:
    elsewhere = mint(owner, allowed_networks=("10.0.0.0/8",))
    here = mint(owner, allowed_networks=("127.0.0.0/8", "::1/128"))
    refused = api.get("/v1/models", headers={"Authorization": f"Bearer {elsewhere.secret}"})
    assert refused.status_code == HTTPStatus.FORBIDDEN
    assert refused.json()["error"]["code"] == "ip_not_allowed"
    assert "127.0.0.1" in refused.json()["error"]["message"]
    allowed = api.get("/v1/models", headers={"Authorization": f"Bearer {here.secret}"})
    assert allowed.status_code == HTTPStatus.OK


def test_a_key_revoked_in_the_console_is_refused_at_once(
    live_gateway: LiveServer, api: httpx.Client, client: Client, owner: User, mint: Mint
) -> None:
    minted = mint(owner, allowed_models=("GPT-4o",))
    headers = {"Authorization": f"Bearer {minted.secret}"}
    assert api.get(f"/v1/models/{quote('GPT-4o')}", headers=headers).status_code == HTTPStatus.OK
    client.force_login(owner)
    assert client.post(reverse("keys:revoke", args=[minted.key.pk])).status_code == 302
    deadline = time.monotonic() + 1.0
    while True:
        response = api.get("/v1/models", headers=headers)
        if response.status_code == HTTPStatus.UNAUTHORIZED or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert "revoked" in response.json()["error"]["message"]


def test_last_use_is_recorded_without_a_write_per_request(
    catalog: None, owner: User, mint: Mint
) -> None:
    minted = mint(owner)
    with LiveServer() as server:
        for _ in range(5):
            response = httpx.get(
                f"{server.url}/v1/models", headers={"Authorization": f"Bearer {minted.secret}"}
            )
            assert response.status_code == HTTPStatus.OK
        assert ApiKey.objects.get().last_used_at is None  # batched, not written per request
    # Stopping the gateway flushes the batch.
    last_used = ApiKey.objects.get().last_used_at
    assert last_used is not None
    assert (datetime.now(UTC) - last_used).total_seconds() < 60
