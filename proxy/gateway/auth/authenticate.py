"""API key authentication for /v1: the key's policy, served from memory on the hot path.

The cached path is a SHA-256, a dict lookup and a few comparisons: no await, no thread hop, no
query. Misses, caching and invalidation live in proxy/gateway/auth/key_cache.py, which also
limits how many unknown keys one client address may have looked up.
"""

import ipaddress
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from hashlib import sha256
from typing import TYPE_CHECKING, Any

from proxy.gateway.errors import AuthenticationFailed, PermissionDenied
from proxy.gateway.http import Request
from proxy.gateway.routing import Card

if TYPE_CHECKING:
    from proxy.gateway.runtime import Runtime

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

KEY_PREFIX = b"tb-"
# Far longer than any key we mint; longer values are refused before hashing.
MAX_KEY_LENGTH = 256
MISSING_KEY_MESSAGE = (
    "You didn't provide an API key. Send it in an Authorization header using Bearer auth "
    "(Authorization: Bearer tb-…); create keys in the console under /keys/."
)
NOT_OUR_KEY_MESSAGE = (
    "This is not a TokenByte API key: ours start with 'tb-'. Create one in the console under "
    "/keys/."
)
# How many allowed titles a 403 names before it says "and N more".
LISTED_MODELS = 5


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """Everything the hot path needs about one key. Immutable; shared by concurrent requests."""

    key_id: int
    account_id: int
    name: str
    prefix: str
    rpm: int | None
    tpm: int | None
    allowed_models: frozenset[str]  # card titles; empty allows every model
    max_request_cost: Decimal | None
    budget: Decimal | None
    budget_period: str
    expires_at: float | None  # epoch seconds
    networks: tuple[IPNetwork, ...]  # empty allows any client address

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> "KeyPolicy":
        """From a cache entry (keys/cache.py key_cache_entry)."""
        return cls(
            key_id=entry["id"],
            account_id=entry["account"],
            name=entry["name"],
            prefix=entry["prefix"],
            rpm=entry["rpm"],
            tpm=entry["tpm"],
            allowed_models=frozenset(entry["models"]),
            max_request_cost=_decimal(entry["max_request_cost"]),
            budget=_decimal(entry["budget"]),
            budget_period=entry["budget_period"],
            expires_at=entry["expires_at"],
            networks=tuple(ipaddress.ip_network(text) for text in entry["networks"]),
        )

    def allows_card(self, card: Card) -> bool:
        # By title: a card's title and its aliases are one model.
        return not self.allowed_models or card.title in self.allowed_models

    def check_card(self, card: Card) -> None:
        if self.allows_card(card):
            return
        allowed = sorted(self.allowed_models)
        listed = ", ".join(allowed[:LISTED_MODELS])
        if len(allowed) > LISTED_MODELS:
            listed += f" and {len(allowed) - LISTED_MODELS} more"
        raise PermissionDenied(
            f"This API key may not use the model '{card.title}'. It allows: {listed}. "
            "Change the key's allowed models in the console under /keys/.",
            param="model",
            code="model_not_allowed",
        )


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _presented_key(request: Request, allow_x_api_key: bool) -> bytes | None:
    value = request.header(b"authorization")
    if value is not None:
        scheme, _, token = value.partition(b" ")
        if scheme.lower() == b"bearer" and token.strip():
            return token.strip()
        if not allow_x_api_key:
            return None
    if allow_x_api_key:
        api_key = request.header(b"x-api-key")
        if api_key is not None and api_key.strip():
            return api_key.strip()
    return None


def _client_address(scope: dict[str, Any]) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    client = scope.get("client")
    if not client:
        return None
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # a dual-stack listener reports IPv4 clients this way
    return address


def _check_client(policy: KeyPolicy, scope: dict[str, Any]) -> None:
    address = _client_address(scope)
    if address is None or not any(address in network for network in policy.networks):
        shown = str(address) if address is not None else "an unknown address"
        raise PermissionDenied(
            f"This API key does not accept requests from {shown}. Its allowed IP ranges are "
            "set in the console under /keys/.",
            code="ip_not_allowed",
        )


async def _authenticate_token(token: bytes, request: Request, runtime: "Runtime") -> KeyPolicy:
    resolver = runtime.keys
    if not token.startswith(KEY_PREFIX) or len(token) > MAX_KEY_LENGTH:
        raise AuthenticationFailed(NOT_OUR_KEY_MESSAGE)
    digest = sha256(token).hexdigest()
    policy = resolver.cached(digest)
    if policy is None:
        # The address pays for a lookup that finds no key (a flood of made-up keys is bounded).
        policy = await resolver.load(digest, _client_address(request.scope))
    if policy.expires_at is not None and time.time() >= policy.expires_at:
        when = datetime.fromtimestamp(policy.expires_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        raise AuthenticationFailed(
            f"This API key expired on {when}. Extend it or create a new key under /keys/."
        )
    if policy.networks:
        _check_client(policy, request.scope)
    resolver.mark_used(policy.key_id)
    return policy


async def authenticate(
    request: Request, runtime: "Runtime", *, allow_x_api_key: bool = False
) -> KeyPolicy:
    """The policy of the request's key, or 401 / 403 / 503 (never 401 for an outage).

    429 when the request's address sent too many unknown keys and this one is not cached.

    The key comes from `Authorization: Bearer <key>`, or `x-api-key: <key>` when
    `allow_x_api_key` (Anthropic's Messages API).
    """
    token = _presented_key(request, allow_x_api_key)
    if token is None:
        raise AuthenticationFailed(MISSING_KEY_MESSAGE)
    return await _authenticate_token(token, request, runtime)


async def authenticate_optional(
    request: Request, runtime: "Runtime", *, allow_x_api_key: bool = False
) -> KeyPolicy | None:
    """For public endpoints: None without a TokenByte key; a TokenByte key is checked fully.

    SDKs always send some key, so a value that is not ours (no 'tb-') counts as no key.
    """
    token = _presented_key(request, allow_x_api_key)
    if token is None or not token.startswith(KEY_PREFIX):
        return None
    return await _authenticate_token(token, request, runtime)
