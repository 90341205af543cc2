"""Without Redis, a change to a key made in one OS process reaches a gateway in another within a
second (the KeyChange rows it polls), not only when its cached copy expires."""

from http import HTTPStatus

import httpx
import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from accounts.models import User
from tests.keys.conftest import Mint
from tests.keys.gateway_processes import gateway_process, within_a_second

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_console_revoke_reaches_an_embedded_gateway_process_within_a_second(
    catalog: None, client: Client, owner: User, mint: Mint
) -> None:
    if settings.REDIS_URL:
        pytest.skip("embedded mode only: with REDIS_URL this process announces through Redis")
    minted = mint(owner, name="elsewhere", allowed_models=("GPT-4o",))
    headers = {"Authorization": f"Bearer {minted.secret}"}
    with gateway_process(REDIS_URL=None) as url:

        def models() -> httpx.Response:
            return httpx.get(f"{url}/v1/models", headers=headers)

        assert models().status_code == HTTPStatus.OK  # now cached in that process's memory

        client.force_login(owner)
        edited = client.post(
            reverse("keys:edit", args=[minted.key.pk]),
            {
                "name": "elsewhere",
                "allowed_models": ["GPT-4o", "Mistral Small"],
                "budget_period": "monthly",
            },
        )
        assert edited.status_code == HTTPStatus.FOUND
        within_a_second(
            lambda: {m["id"] for m in models().json()["data"]} == {"GPT-4o", "Mistral Small"}
        )

        revoked = client.post(reverse("keys:revoke", args=[minted.key.pk]))
        assert revoked.status_code == HTTPStatus.FOUND
        refused_after = within_a_second(lambda: models().status_code == HTTPStatus.UNAUTHORIZED)
        assert "revoked" in models().json()["error"]["message"]
    print(f"the other process refused the revoked key after {refused_after * 1000:.0f} ms")
