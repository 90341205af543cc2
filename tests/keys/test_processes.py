"""Keys across real gateway processes: invalidation between them, and a database outage."""

import secrets
import time
from collections.abc import Callable
from http import HTTPStatus

import httpx
import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import Client
from django.urls import reverse

from accounts.models import User
from keys.cache import changes_channel
from tests.conftest import database_url
from tests.keys.conftest import Mint
from tests.keys.gateway_processes import TcpRelay, gateway_process

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def model_ids(response: httpx.Response) -> set[str]:
    return {entry["id"] for entry in response.json()["data"]}


def within_a_second(check: Callable[[], bool]) -> float:
    """Poll `check` every 10 ms; the seconds it took to hold, failing after 1 s."""
    start = time.monotonic()
    while not check():
        elapsed = time.monotonic() - start
        assert elapsed < 1.0, "not within 1 s"
        time.sleep(0.01)
    return time.monotonic() - start


def wait_for_subscribers(count: int) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    channel = changes_channel(client.connection_pool.connection_kwargs.get("db", 0))
    deadline = time.monotonic() + 10
    while client.pubsub_numsub(channel)[0][1] < count:
        assert time.monotonic() < deadline, "the gateways did not subscribe"
        time.sleep(0.05)
    client.close()


@pytest.mark.redis
def test_console_changes_reach_two_gateway_processes_within_a_second(
    catalog: None, client: Client, owner: User, mint: Mint
) -> None:
    minted = mint(owner, name="shared", allowed_models=("GPT-4o",))
    headers = {"Authorization": f"Bearer {minted.secret}"}
    with (
        gateway_process(REDIS_URL=settings.REDIS_URL) as first,
        gateway_process(REDIS_URL=settings.REDIS_URL) as second,
    ):
        gateways = (first, second)
        wait_for_subscribers(2)
        for url in gateways:  # both now hold the key in memory
            assert model_ids(httpx.get(f"{url}/v1/models", headers=headers)) == {"GPT-4o"}

        client.force_login(owner)
        edited = client.post(
            reverse("keys:edit", args=[minted.key.pk]),
            {
                "name": "shared",
                "allowed_models": ["GPT-4o", "Mistral Small"],
                "budget_period": "monthly",
            },
        )
        assert edited.status_code == HTTPStatus.FOUND
        both = {"GPT-4o", "Mistral Small"}
        within_a_second(
            lambda: all(
                model_ids(httpx.get(f"{url}/v1/models", headers=headers)) == both
                for url in gateways
            )
        )

        revoked = client.post(reverse("keys:revoke", args=[minted.key.pk]))
        assert revoked.status_code == HTTPStatus.FOUND
        refused_after = within_a_second(
            lambda: all(
                httpx.get(f"{url}/v1/models", headers=headers).status_code
                == HTTPStatus.UNAUTHORIZED
                for url in gateways
            )
        )
        print(f"both gateways refused the revoked key after {refused_after * 1000:.0f} ms")


def relayed_database_url(relay: TcpRelay) -> str:
    return database_url().replace(
        f":{connection.settings_dict['PORT'] or 5432}/", f":{relay.port}/"
    )


@pytest.mark.parametrize(
    "with_redis",
    [
        pytest.param(False, id="memory-only"),
        pytest.param(True, id="redis", marks=pytest.mark.redis),
    ],
)
def test_a_database_outage_never_turns_a_key_into_a_401(
    catalog: None, owner: User, mint: Mint, with_redis: bool
) -> None:
    used, unused = mint(owner, name="used"), mint(owner, name="never used yet")
    db = connection.settings_dict
    relay = TcpRelay(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))
    env = {
        "DATABASE_URL": relayed_database_url(relay),
        "REDIS_URL": settings.REDIS_URL if with_redis else None,
    }
    try:
        with gateway_process(**env) as url:

            def models(secret: str) -> httpx.Response:
                return httpx.get(
                    f"{url}/v1/models", headers={"Authorization": f"Bearer {secret}"}, timeout=15
                )

            assert models(used.secret).status_code == HTTPStatus.OK
            relay.cut()
            ready = httpx.get(f"{url}/readyz", timeout=10).json()
            assert ready["checks"]["database"].startswith("unreachable")

            assert models(used.secret).status_code == HTTPStatus.OK  # from memory
            never_seen = models("tb-" + secrets.token_urlsafe(32))
            assert never_seen.status_code == HTTPStatus.SERVICE_UNAVAILABLE
            assert never_seen.json()["error"]["code"] == "service_unavailable"
            assert "database is unreachable" in never_seen.json()["error"]["message"]
            other = models(unused.secret)
            if with_redis:  # its entry was written to Redis when it was minted
                assert other.status_code == HTTPStatus.OK
            else:
                assert other.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    finally:
        relay.cut()
