"""API key authentication for /v1: the key's policy, served from memory on the hot path.

The cached path is a SHA-256, a dict lookup and a few comparisons: no await, no thread hop, no
query. Misses, caching and invalidation live in proxy/gateway/auth/key_cache.py, which also
limits how many unknown keys one client address may have looked up.
"""

import ipaddress
import time
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any

from proxy.gateway.auth.key_cache import KeyResolver
from proxy.gateway.auth.policy import KeyPolicy
from proxy.gateway.errors import AuthenticationFailed, GatewayError, PermissionDenied
from proxy.gateway.http import Request
from proxy.gateway.observe import refused_before_auth

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


async def _authenticate_token(token: bytes, request: Request, resolver: KeyResolver) -> KeyPolicy:
    # Refusals here are a metric, never usage events (no account's yet); a try costs nothing
    # until it catches.
    try:
        return await _policy_for(token, request, resolver)
    except GatewayError as error:
        refused_before_auth(request.request_id, request.path, error)
        raise


async def _policy_for(token: bytes, request: Request, resolver: KeyResolver) -> KeyPolicy:
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
    request: Request, keys: KeyResolver, *, allow_x_api_key: bool = False
) -> KeyPolicy:
    """The policy of the request's key, or 401 / 403 / 503 (never 401 for an outage).

    429 when the request's address sent too many unknown keys and this one is not cached.

    The key comes from `Authorization: Bearer <key>`, or `x-api-key: <key>` when
    `allow_x_api_key` (Anthropic's Messages API).
    """
    token = _presented_key(request, allow_x_api_key)
    if token is None:
        missing = AuthenticationFailed(MISSING_KEY_MESSAGE)
        refused_before_auth(request.request_id, request.path, missing)
        raise missing
    return await _authenticate_token(token, request, keys)


async def authenticate_optional(
    request: Request, keys: KeyResolver, *, allow_x_api_key: bool = False
) -> KeyPolicy | None:
    """For public endpoints: None without a TokenByte key; a TokenByte key is checked fully.

    SDKs always send some key, so a value that is not ours (no 'tb-') counts as no key.
    """
    token = _presented_key(request, allow_x_api_key)
    if token is None or not token.startswith(KEY_PREFIX):
        return None
    return await _authenticate_token(token, request, keys)
