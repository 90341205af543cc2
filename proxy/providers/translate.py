"""Helpers the translating adapters (Anthropic, Gemini) share: reading OpenAI-shaped requests.

Everything here is pure and raises InvalidRequest naming the offending field, in the client's
(OpenAI's) terms.
"""

import re
from typing import Any

import orjson

from proxy.gateway.errors import InvalidRequest
from proxy.gateway.routing import Card

# Bookkeeping fields of OpenAI's API that mean nothing to another provider: dropped.
OPENAI_BOOKKEEPING = frozenset(
    {
        "store",
        "metadata",
        "service_tier",
        "safety_identifier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "prompt_cache_options",
        "moderation",
        "stream_options",  # the gateway always gets usage; the client's wish is honoured by us
        "stream",
    }
)
# Reasoning effort (OpenAI's names) as a thinking budget in tokens. Google maps its own
# OpenAI-compatible endpoint the same way (low 1K, medium 8K, high 24K); 1,024 is Anthropic's
# minimum budget.
EFFORT_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768}
EFFORTS = frozenset({"none", *EFFORT_BUDGETS})
# The most searches a translated web_search_options may run (Claude's max_uses): written into
# the chat core's web_search_options by the ceiling (pipeline/server_tools.py), not a client's.
SEARCH_MAX_USES = "max_uses"
_DATA_URL = re.compile(r"data:(?P<media>[\w.+-]+/[\w.+-]+)(?:;[^,;]*)*;base64,(?P<data>.*)", re.S)


def token_count(value: Any) -> int:
    """A provider's token count, or 0 when it is missing or malformed."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def unsupported(card: Card, field: str, detail: str = "") -> InvalidRequest:
    return InvalidRequest(
        f"'{field}' is not supported by {card.title} ({card.provider}){detail}.",
        param=field,
        code="unsupported_parameter",
    )


def refuse_meaningful(body: dict[str, Any], card: Card) -> None:
    """Refuse OpenAI fields whose effect the provider cannot give, unless they are no-ops."""
    if (body.get("n") or 1) != 1:
        raise unsupported(card, "n", "; ask for one choice per request")
    for field in ("frequency_penalty", "presence_penalty"):
        if body.get(field) not in (None, 0, 0.0):
            raise unsupported(card, field)
    if body.get("logit_bias"):
        raise unsupported(card, "logit_bias")
    if body.get("logprobs") or body.get("top_logprobs") is not None:
        raise unsupported(card, "logprobs" if body.get("logprobs") else "top_logprobs")
    for field in ("audio", "prediction", "web_search_options", "functions", "function_call"):
        if body.get(field) is not None:
            raise unsupported(card, field)
    modalities = body.get("modalities")
    if modalities is not None and list(modalities) != ["text"]:
        raise unsupported(card, "modalities", "; it answers in text only")


def refuse_unknown(body: dict[str, Any], known: frozenset[str]) -> None:
    for field in body:
        if field not in known:
            raise InvalidRequest(
                f"Unrecognized request argument supplied: {field}",
                param=field,
                code="unknown_parameter",
            )


def max_output(body: dict[str, Any]) -> int | None:
    value = body.get("max_completion_tokens")
    if value is None:
        value = body.get("max_tokens")
    return value if isinstance(value, int) else None


def reasoning_effort(body: dict[str, Any], card: Card) -> str | None:
    """The client's reasoning effort, checked; None when it asked for none (or nothing)."""
    effort = body.get("reasoning_effort")
    if effort is None:
        return None
    if effort not in EFFORTS:
        raise InvalidRequest(
            f"'reasoning_effort' must be one of {', '.join(sorted(EFFORTS))}; got {effort!r}.",
            param="reasoning_effort",
            code="invalid_value",
        )
    if effort == "none":
        return None
    if not card.supports_reasoning:
        raise unsupported(card, "reasoning_effort", ", which does not reason")
    return str(effort)


def data_url(url: str, where: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a data: URL; None for any other URL."""
    if not url.startswith("data:"):
        return None
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise InvalidRequest(
            f"'{where}' is a data: URL without base64 content; expected "
            "data:<media type>;base64,<data>.",
            param=where,
            code="invalid_value",
        )
    return match["media"].lower(), match["data"]


def image_url_of(part: dict[str, Any], where: str) -> str:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise InvalidRequest(
            f"'{where}.image_url.url' must be a URL or a data: URL.",
            param=f"{where}.image_url.url",
            code="invalid_value",
        )
    return url


def tool_arguments(call: Any, where: str) -> tuple[str, str, dict[str, Any]]:
    """(id, function name, parsed arguments) of an assistant message's tool call."""
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise InvalidRequest(
            f"'{where}' must be a function tool call with a name.",
            param=where,
            code="invalid_value",
        )
    raw = function.get("arguments") or "{}"
    try:
        arguments = orjson.loads(raw) if isinstance(raw, str) else raw
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"'{where}.function.arguments' is not valid JSON: {exc}",
            param=f"{where}.function.arguments",
            code="invalid_value",
        ) from exc
    if not isinstance(arguments, dict):
        raise InvalidRequest(
            f"'{where}.function.arguments' must encode a JSON object.",
            param=f"{where}.function.arguments",
            code="invalid_value",
        )
    call_id = call.get("id")
    return (call_id if isinstance(call_id, str) else ""), function["name"], arguments


def text_of(content: Any) -> str:
    """The text of a message's content, string or parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def json_schema_of(response_format: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(name, schema) of a json_schema response format."""
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
        raise InvalidRequest(
            "'response_format.json_schema' must be an object with a 'schema'.",
            param="response_format.json_schema",
            code="invalid_value",
        )
    name = spec.get("name")
    return (name if isinstance(name, str) and name else "response"), spec.get("schema") or {}


def response_format_type(body: dict[str, Any]) -> str | None:
    fmt = body.get("response_format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise InvalidRequest(
            "'response_format.type' must be text, json_object or json_schema.",
            param="response_format.type",
            code="invalid_value",
        )
    return None if kind == "text" else str(kind)


def function_of(tool: Any, index: int) -> dict[str, Any]:
    """The `function` of an OpenAI function tool, its name checked; a 400 naming the tool if not."""
    where = f"tools[{index}]"
    function = tool.get("function") if isinstance(tool, dict) else None
    if (
        not isinstance(tool, dict)
        or tool.get("type") != "function"
        or not isinstance(function, dict)
    ):
        raise InvalidRequest(
            f'\'{where}\' must be a function tool: {{"type": "function", "function": {{…}}}}.',
            param=where,
            code="invalid_value",
        )
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(
            f"'{where}.function.name' is required.", param=f"{where}.function.name"
        )
    return function
