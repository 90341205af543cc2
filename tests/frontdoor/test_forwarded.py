"""X-Forwarded-For is believed only from the addresses in FORWARDED_ALLOW_IPS (default: none, not
even loopback), by the gateway's key IP ranges and by the console's rate limits alike."""

import random
from collections.abc import Iterator
from http import HTTPStatus

import httpx
import pytest
from allauth.core import ratelimit
from django.test import RequestFactory
from pytest_django.fixtures import Settings as SettingsWrapper

from accounts.models import User
from keys.services import key_mint
from keys.validation import KeySpec
from tests.conftest import LiveServer


def key_for(networks: tuple[str, ...]) -> str:
    owner, _ = User.objects.get_or_create(email="forwarded@example.com")
    return key_mint(owner=owner, spec=KeySpec(name="ranges", allowed_networks=networks)).secret


def models_as(server: LiveServer, key: str, forwarded_for: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    return httpx.get(f"{server.url}/v1/models", headers=headers, timeout=10)


@pytest.fixture
def trusting_server(settings: SettingsWrapper, catalog: None) -> Iterator[LiveServer]:
    settings.FORWARDED_ALLOW_IPS = ["127.0.0.1"]
    with LiveServer() as live:
        yield live


def test_by_default_a_local_forwarder_cannot_choose_the_client_address(
    live_gateway: LiveServer,
) -> None:
    office = key_for(("10.0.0.0/8",))
    refused = models_as(live_gateway, office, forwarded_for="10.1.2.3")
    assert refused.status_code == HTTPStatus.FORBIDDEN
    assert refused.json()["error"]["code"] == "ip_not_allowed"
    assert "127.0.0.1" in refused.json()["error"]["message"]  # the peer, not the claim


def test_a_listed_forwarder_is_believed_and_the_client_behind_it_checked(
    trusting_server: LiveServer,
) -> None:
    office = key_for(("10.0.0.0/8",))
    assert models_as(trusting_server, office, forwarded_for="10.1.2.3").status_code == 200
    # The forwarder itself is not in the key's ranges, nor is a client it names elsewhere.
    assert models_as(trusting_server, office).status_code == HTTPStatus.FORBIDDEN
    assert models_as(trusting_server, office, "192.0.2.7").status_code == HTTPStatus.FORBIDDEN
    # A client's own forged entry goes first; the forwarder's (the last) is the one believed.
    assert models_as(trusting_server, office, "10.9.9.9, 192.0.2.7").status_code == 403
    loopback = key_for(("127.0.0.0/8",))
    assert models_as(trusting_server, loopback, forwarded_for="10.1.2.3").status_code == 403


def failed_logins(url: str, forwarded_for: list[str]) -> list[int]:
    """POST a wrong password once per X-Forwarded-For value, from 127.0.0.1."""
    with httpx.Client(base_url=url, timeout=10) as client:
        token = client.get("/accounts/login/").cookies["csrftoken"]
        # Sent by hand: the cookie is Secure (DEBUG is off) and this is plain http.
        csrf = {"Cookie": f"csrftoken={token}", "X-CSRFToken": token}
        return [
            client.post(
                "/accounts/login/",
                data={"login": f"nobody{n}@example.com", "password": "wrong-password"},
                headers={**csrf, "X-Forwarded-For": claimed},
            ).status_code
            for n, claimed in enumerate(forwarded_for)
        ]


@pytest.fixture
def addresses(settings: SettingsWrapper) -> list[str]:
    """Two sign-in attempts a minute per address; loopback's count and three others', fresh."""
    settings.ACCOUNT_RATE_LIMITS = {"login": "2/m/ip"}
    fresh = ["127.0.0.1", *(f"203.0.113.{n}" for n in random.sample(range(1, 255), 3))]
    for address in fresh:  # the cache (Redis) outlives a test run
        ratelimit.clear(RequestFactory().get("/", REMOTE_ADDR=address), action="login")
    return fresh


def test_sign_in_rate_limits_count_the_peer_when_no_forwarder_is_listed(
    live_gateway: LiveServer, addresses: list[str]
) -> None:
    _, first, second, third = addresses
    statuses = failed_logins(live_gateway.url, [first, second, third])
    assert statuses == [HTTPStatus.OK, HTTPStatus.OK, HTTPStatus.TOO_MANY_REQUESTS]


def test_sign_in_rate_limits_count_the_address_a_listed_forwarder_gives(
    settings: SettingsWrapper, catalog: None, addresses: list[str]
) -> None:
    settings.FORWARDED_ALLOW_IPS = ["127.0.0.1"]
    _, first, second, third = addresses
    with LiveServer() as server:
        spread = failed_logins(server.url, [first, second])
        one_client = failed_logins(server.url, [third, third, third])
    assert spread == [HTTPStatus.OK, HTTPStatus.OK]
    assert one_client == [HTTPStatus.OK, HTTPStatus.OK, HTTPStatus.TOO_MANY_REQUESTS]
