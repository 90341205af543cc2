"""What an upstream's failure says, in words a client may read: our own sentences for its
failures, its 4xx validation message scrubbed (proxy/upstream/redact.py), a mid-stream error
event's kind. Pure text: the providers' translators use it too (failures.py maps statuses and
writes the log lines)."""

import re
from typing import Any

import orjson

from proxy.gateway.errors import UpstreamError
from proxy.upstream.redact import scrub

LOG_BODY_CHARS = 1000  # of an upstream's error body, in the log line
_KIND = re.compile(r"[A-Za-z_]{1,40}")  # an error event's type: an enum, safe to show
_OVERLOADED = frozenset({"overloaded_error", "UNAVAILABLE"})
_RATE_LIMITED = frozenset({"rate_limit_error", "rate_limit_exceeded", "RESOURCE_EXHAUSTED"})


def failed(provider: str, what: str) -> str:
    """Our own words for an upstream's failure; `cite_request` adds the request id."""
    return f"The upstream ({provider}) {what}."


def stream_failure(provider: str, error: Any) -> UpstreamError:
    """An error event inside a stream that had begun: its kind, and what that means, in our
    words; never its text."""
    fields = error if isinstance(error, dict) else {}
    kind = fields.get("type") or fields.get("status")  # Anthropic's and OpenAI's; Gemini's
    kind = kind if isinstance(kind, str) and _KIND.fullmatch(kind) else None
    what = f"failed mid-stream ({kind})" if kind else "failed mid-stream"
    if kind in _OVERLOADED or fields.get("code") in (503, 529):
        what += ": it is overloaded; retry shortly"
    elif kind in _RATE_LIMITED or fields.get("code") == 429:
        what += ": it is rate-limiting the gateway; retry shortly"
    return UpstreamError(
        failed(provider, what), detail="error event: " + trimmed(orjson.dumps(error).decode())
    )


def trimmed(text: str) -> str:
    return " ".join(text.split())[:LOG_BODY_CHARS]


# --- an upstream's validation message, for the client -------------------------------------
def upstream_message(body: bytes) -> str:
    """The human message inside a provider's 4xx body, whatever its shape, scrubbed."""
    return scrub(_raw_message(body)) or "no details"


def _raw_message(body: bytes) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode(errors="replace").strip()
        # An HTML error page (a proxy's or a load balancer's) says nothing a client can use.
        return "" if text.startswith("<") else text.splitlines()[0] if text else ""
    candidates = [data]
    if isinstance(data, dict):
        candidates += [data.get("error"), data.get("message"), data.get("detail")]
    for item in candidates:
        if isinstance(item, dict) and isinstance(item.get("detail"), list):
            return _validation_text(item["detail"])
        if isinstance(item, list) and item and isinstance(item[0], dict) and "loc" in item[0]:
            return _validation_text(item)  # Mistral's newer shape: message is the list itself
        if isinstance(item, dict) and isinstance(item.get("message"), str):
            return _nested(item["message"])
        if isinstance(item, str):
            return _nested(item)
    return ""


def _nested(message: str) -> str:
    """Some servers put a JSON error inside the message string (Mistral's proxy does)."""
    if message.startswith(("{", "[")):
        inner = _raw_message(message.encode())
        if inner:
            return inner
    return message


def _validation_text(detail: list[Any]) -> str:
    """Pydantic-style validation errors (Mistral's 422) as one readable line: field and
    problem; their `input` (the client's own value) and `url` left out."""
    parts = []
    for problem in detail[:5]:
        if isinstance(problem, dict):
            loc = [str(p) for p in problem.get("loc", []) if p != "body"]
            parts.append(f"{'.'.join(loc) or 'body'}: {problem.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"
