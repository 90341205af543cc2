"""Checking an upstream credential with one cheap call to its provider before it is stored.

The call is the provider's model list (GET …/models), built by the provider's adapter and sent
through the gateway's own upstream client: the same URL, headers, proxy and TLS settings the
gateway's calls will use. Only the provider's refusal of the key (401 or 403, or what the
adapter reads as one, such as Gemini's 400 API_KEY_INVALID) means "rejected"; an unreachable
server or any other answer means "could not be checked".
"""

import asyncio
from typing import Any

import httpx

from proxy.gateway.routing import Upstream
from proxy.providers import adapter_for
from proxy.upstream.pool import build_transport
from proxy.upstream.request import UpstreamRequest
from proxy.upstream.wording import upstream_message

# Seconds for the whole check, connecting included: an operator is waiting at a prompt.
VERIFY_TIMEOUT_SECONDS = 10.0
NO_VERIFY_HINT = "or add --no-verify to save it unchecked"


class CredentialCheckFailed(Exception):
    """The key was not confirmed; `rejected` when the provider itself refused it."""

    def __init__(self, message: str, *, rejected: bool) -> None:
        super().__init__(message)
        self.rejected = rejected


def credential_verify(*, provider: str, api_key: str, base_url: str) -> None:
    """Raise CredentialCheckFailed unless the provider accepts `api_key` at `base_url`.

    `base_url` is the effective one (the provider's default filled in). Synchronous: it runs
    its own event loop, so call it from a command, never from the gateway's loop.
    """
    upstream = Upstream(
        id=0, provider=provider, name="", base_url=base_url, api_key=api_key, priority=0, weight=1
    )
    adapter = adapter_for(provider)
    request = adapter.models_request(upstream)
    where = f"{provider} at {base_url}"
    try:
        status, body = asyncio.run(_send(request))
    except (httpx.RequestError, TimeoutError, OSError) as exc:
        reason = (
            f"no answer within {VERIFY_TIMEOUT_SECONDS:g} s"
            if isinstance(exc, TimeoutError | httpx.TimeoutException)
            else _reason(exc)
        )
        raise CredentialCheckFailed(
            f"could not reach {where} to check the key ({reason}); check --base-url and the "
            f"network, {NO_VERIFY_HINT}",
            rejected=False,
        ) from exc
    if status in (401, 403) or adapter.rejects_credential(status, body):
        raise CredentialCheckFailed(
            f"{where} rejected this API key (HTTP {status}: {_one_line(body)}); nothing was saved",
            rejected=True,
        )
    if status >= 300:
        raise CredentialCheckFailed(
            f"could not check the key: {where} answered GET {request.url.path} with HTTP "
            f"{status} ({_one_line(body)}); check --base-url, {NO_VERIFY_HINT}",
            rejected=False,
        )


async def _send(request: UpstreamRequest) -> tuple[int, bytes]:
    timeout = VERIFY_TIMEOUT_SECONDS
    request.extensions["timeout"] = {
        "connect": timeout,
        "read": timeout,
        "write": timeout,
        "pool": timeout,
    }
    transport = build_transport()
    try:
        async with asyncio.timeout(timeout):
            response = await transport.send(request)
            stream: Any = response.stream  # an async byte stream from either transport
            try:
                body = b"".join([chunk async for chunk in stream])
            finally:
                await response.aclose()
        return response.status_code, body
    finally:
        await transport.aclose()


def _reason(exc: Exception) -> str:
    """One line: the exception's kind and its first line (never a header or a key)."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _one_line(body: bytes) -> str:
    """The provider's message, scrubbed of keys, hosts and ids (proxy/upstream/failures.py)."""
    return " ".join(upstream_message(body).split())
