"""How an upstream's failed answer becomes the gateway's error, and whether to fail over."""

from typing import Any

import httpx
import orjson

from proxy.errors import GatewayError, ServiceUnavailable, UpstreamError, UpstreamTimeout

MAX_COOLDOWN_SECONDS = 60.0


class Failure(Exception):
    """One attempt failed in a way the next credential may not: fail over."""

    def __init__(self, error: GatewayError, cooldown: float) -> None:
        super().__init__(error.message)
        self.error = error
        self.cooldown = cooldown


def is_client_error(status: int) -> bool:
    """4xx that another credential would answer the same way (the request itself is wrong)."""
    return 400 <= status < 500 and status not in (401, 403, 408, 409, 429)


def failure_for_status(name: str, status: int, body: bytes, headers: httpx.Headers) -> Failure:
    detail = upstream_message(body)
    if status == 429:
        retry_after = _seconds(headers.get("retry-after"))
        return Failure(
            ServiceUnavailable(
                f"{name} is rate-limiting us; retry shortly. Upstream said: {detail}",
                code="upstream_rate_limited",
                headers=[(b"retry-after", str(int(retry_after or 5)).encode())],
            ),
            cooldown=min(retry_after or 5.0, MAX_COOLDOWN_SECONDS),
        )
    if status in (401, 403):
        # Our credential, not the caller's request: never echo details of our key.
        return Failure(
            UpstreamError(
                f"{name} rejected the gateway's credential (HTTP {status}).",
                code="upstream_auth_failed",
            ),
            cooldown=MAX_COOLDOWN_SECONDS,
        )
    if status == 408:
        return Failure(UpstreamTimeout(f"{name} timed out (HTTP 408). {detail}"), 5.0)
    return Failure(UpstreamError(f"{name} failed (HTTP {status}): {detail}"), cooldown=5.0)


def upstream_message(body: bytes) -> str:
    """The human message inside a provider's error body, whatever its shape."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode(errors="replace").strip()
        return text[:300] or "no details"
    candidates = [data]
    if isinstance(data, dict):
        candidates += [data.get("error"), data.get("message")]
    for item in candidates:
        if isinstance(item, dict) and isinstance(item.get("detail"), list):
            return _validation_text(item["detail"])
        if isinstance(item, dict) and isinstance(item.get("message"), str):
            return str(item["message"])[:500]
        if isinstance(item, str):
            return item[:500]
    if isinstance(data, dict) and "detail" in data:
        return orjson.dumps(data["detail"]).decode()[:500]
    return body.decode(errors="replace")[:300]


def _validation_text(detail: list[Any]) -> str:
    """Pydantic-style validation errors (Mistral's 422) as one readable line."""
    parts = []
    for problem in detail[:5]:
        if isinstance(problem, dict):
            loc = [str(p) for p in problem.get("loc", []) if p != "body"]
            parts.append(f"{'.'.join(loc) or 'body'}: {problem.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
