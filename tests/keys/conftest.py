"""Fixtures for the key tests: users, signed-in clients, a key factory, gateway requests."""

import secrets
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import Client

from accounts.models import User
from keys.services import MintedKey, key_mint
from keys.validation import KeySpec
from proxy.gateway.auth.authenticate import authenticate
from proxy.gateway.auth.key_cache import KeyResolver
from proxy.gateway.auth.policy import KeyPolicy
from proxy.gateway.errors import AuthenticationFailed, GatewayError, PermissionDenied
from proxy.gateway.http import Request
from proxy.gateway.ids import IdSource
from proxy.gateway.runtime import Runtime
from proxy.services import catalog_sync
from tokenbyte.gateway_stores import gateway_stores

Mint = Callable[..., MintedKey]


@pytest.fixture
def loaded_catalog(db: None) -> None:
    catalog_sync()


@pytest.fixture
def owner(db: None) -> User:
    return User.objects.create_user("owner@example.com", "correct-horse-battery")


@pytest.fixture
def stranger(db: None) -> User:
    return User.objects.create_user("stranger@example.com", "correct-horse-battery")


@pytest.fixture
def owner_client(client: Client, owner: User) -> Client:
    client.force_login(owner)
    return client


@pytest.fixture
def mint(db: None, loaded_catalog: None) -> Mint:
    """mint(owner, name=..., rpm=..., ...) -> MintedKey, through the service."""

    def make(owner: User, **spec: Any) -> MintedKey:
        spec.setdefault("name", "test key")
        return key_mint(owner=owner, spec=KeySpec(**spec))

    return make


def gateway_request(
    *headers: tuple[bytes, bytes],
    client: tuple[str, int] | None = ("127.0.0.1", 50123),
    path: str = "/v1/chat/completions",
) -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": list(headers),
        "client": client,
    }
    return Request(scope, None, None, IdSource())


def bearer(secret: str) -> tuple[bytes, bytes]:
    return (b"authorization", f"Bearer {secret}".encode())


def runtime_with_resolver(redis: Any = None) -> Runtime:
    """A Runtime holding only a key resolver (not started: no listener, no flusher)."""
    stores = gateway_stores()
    runtime = Runtime(stores)
    runtime.keys = KeyResolver(redis, stores.keys)
    return runtime


def authenticate_sync(runtime: Runtime, *headers: tuple[bytes, bytes], **kwargs: Any) -> KeyPolicy:
    client = kwargs.pop("client", ("127.0.0.1", 50123))
    return async_to_sync(authenticate)(
        gateway_request(*headers, client=client), runtime.keys, **kwargs
    )


def made_up_key() -> str:
    """A well-formed key nobody minted (fresh each time: Redis outlives test databases)."""
    return "tb-" + secrets.token_urlsafe(32)


def refused(runtime: Runtime, *headers: tuple[bytes, bytes], **kwargs: Any) -> GatewayError:
    with pytest.raises((AuthenticationFailed, PermissionDenied)) as caught:
        authenticate_sync(runtime, *headers, **kwargs)
    return caught.value
