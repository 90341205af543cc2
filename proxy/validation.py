"""Checks on request bodies before anything is sent upstream; errors name the field."""

from dataclasses import dataclass
from typing import Any

from proxy.errors import InvalidRequest

CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


@dataclass(frozen=True, slots=True)
class ChatCall:
    model: str
    stream: bool
    include_usage: bool


def _require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_body")
    return body


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest(
            "'model' is required: a catalog title such as \"GPT-4o\" (GET /v1/models lists them).",
            param="model",
            code="missing_required_parameter" if model is None else "invalid_type",
        )
    return model


def _positive_int(body: dict[str, Any], field: str) -> None:
    value = body.get(field)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise InvalidRequest(
            f"'{field}' must be a positive integer.", param=field, code="invalid_value"
        )


def _boolean(body: dict[str, Any], field: str, where: str | None = None) -> bool:
    value = body.get(field)
    if value is not None and not isinstance(value, bool):
        name = where or field
        raise InvalidRequest(f"'{name}' must be true or false.", param=name, code="invalid_type")
    return bool(value)


def validate_chat(body: Any) -> ChatCall:
    body = _require_object(body)
    model = _model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(
            "'messages' must be a non-empty array of messages.",
            param="messages",
            code="missing_required_parameter" if messages is None else "invalid_type",
        )
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"'{where}' must be an object.", param=where, code="invalid_type")
        role = message.get("role")
        if role not in CHAT_ROLES:
            raise InvalidRequest(
                f"'{where}.role' must be one of {', '.join(sorted(CHAT_ROLES))}; got {role!r}.",
                param=f"{where}.role",
                code="invalid_value",
            )
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise InvalidRequest(
                f"'{where}.content' must be a string or an array of content parts.",
                param=f"{where}.content",
                code="invalid_type",
            )
    stream = _boolean(body, "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest(
            "'stream_options' must be an object.", param="stream_options", code="invalid_type"
        )
    include_usage = _boolean(options or {}, "include_usage", "stream_options.include_usage")
    for field in ("max_tokens", "max_completion_tokens", "n"):
        _positive_int(body, field)
    if body.get("tools") is not None and not isinstance(body["tools"], list):
        raise InvalidRequest("'tools' must be an array.", param="tools", code="invalid_type")
    return ChatCall(model=model, stream=stream, include_usage=include_usage)


def validate_embeddings(body: Any) -> str:
    body = _require_object(body)
    model = _model(body)
    text = body.get("input")
    if not isinstance(text, str | list) or (isinstance(text, list | str) and len(text) == 0):
        raise InvalidRequest(
            "'input' must be a non-empty string or array.",
            param="input",
            code="missing_required_parameter" if text is None else "invalid_value",
        )
    return model
