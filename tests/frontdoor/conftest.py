"""A live server with small front-door bounds, so each refusal comes within seconds."""

from collections.abc import Iterator
from http import HTTPStatus

import httpx
import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from accounts.models import User
from keys.services import key_mint
from keys.validation import KeySpec
from tests.conftest import LiveServer

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
KEEP_ALIVE_TIMEOUT = 1.0
MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS = 40


@pytest.fixture
def small_bounds(settings: SettingsWrapper) -> SettingsWrapper:
    settings.TOKENBYTE_HEADER_TIMEOUT = HEADER_TIMEOUT
    settings.TOKENBYTE_BODY_TIMEOUT = BODY_TIMEOUT
    settings.TOKENBYTE_KEEP_ALIVE_TIMEOUT = KEEP_ALIVE_TIMEOUT
    settings.TOKENBYTE_MAX_HEADER_BYTES = MAX_HEADER_BYTES
    settings.TOKENBYTE_MAX_HEADERS = MAX_HEADERS
    return settings


@pytest.fixture
def server(small_bounds: SettingsWrapper, catalog: None) -> Iterator[LiveServer]:
    """The whole app under uvicorn as `serve` runs it, with the small bounds above."""
    with LiveServer() as live:
        yield live


@pytest.fixture
def api_key(transactional_db: None) -> str:
    owner = User.objects.create_user("front-door@example.com")
    return key_mint(owner=owner, spec=KeySpec(name="front door")).secret


def assert_served(server: LiveServer) -> None:
    """A normal request on a connection of its own is answered."""
    response = httpx.get(f"{server.url}/v1/models", timeout=10)
    assert response.status_code == HTTPStatus.OK
    assert response.json()["data"]
