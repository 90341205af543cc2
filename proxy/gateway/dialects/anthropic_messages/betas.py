"""Anthropic's retired beta spellings on /v1/messages, read as their GA forms before anything else
sees the request (pure; raises InvalidRequest).

Structured outputs began as the beta `structured-outputs-2025-11-13` with a top-level
`output_format`; at GA the format moved to `output_config.format` and the beta header went away,
and Anthropic's API now refuses `output_format`. Clients built on the beta still send it
(LiteLLM's `anthropic/` provider does, header included), so the gateway moves it for them.
"""

from typing import Any

from proxy.gateway.errors import InvalidRequest

STRUCTURED_OUTPUTS_BETA = b"structured-outputs-2025-11-13"


def ga_body(body: Any) -> Any:
    """The body with a beta `output_format` moved to `output_config.format` (a copy if moved)."""
    if not isinstance(body, dict) or "output_format" not in body:
        return body
    body = dict(body)
    output_format = body.pop("output_format")
    if output_format is None:
        return body
    config = body.get("output_config")
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise InvalidRequest("output_config: must be an object.", param="output_config")
    if config.get("format") is not None:
        raise InvalidRequest(
            "output_format: give the format once, as output_config.format (output_format is "
            "its name from the structured-outputs beta).",
            param="output_format",
        )
    body["output_config"] = {**config, "format": output_format}
    return body


def ga_betas(beta: bytes | None) -> bytes | None:
    """The client's anthropic-beta header without the structured-outputs beta, which is GA."""
    if beta is None or STRUCTURED_OUTPUTS_BETA not in beta:
        return beta
    kept = [name.strip() for name in beta.split(b",")]
    return b",".join(name for name in kept if name and name != STRUCTURED_OUTPUTS_BETA) or None
