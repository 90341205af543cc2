"""The checks request validation is built from: OpenAI's types and ranges, in OpenAI's words.

Each raises InvalidRequest naming the field's path (`temperature`, `messages[1].role`) in its
`param` and its message, with OpenAI's codes (invalid_type, decimal_above_max_value, …). JSON's
booleans are never taken for numbers (Python's bool is an int); orjson never yields NaN or inf.
The inbound APIs that use them live in proxy/gateway/dialects/.
"""

from typing import Any

from proxy.gateway.errors import InvalidRequest

# How OpenAI names a JSON value's type in its errors ("… but got a string instead").
_KINDS = {
    bool: "a boolean",
    int: "an integer",
    float: "a decimal number",
    str: "a string",
    list: "an array",
    dict: "an object",
}


def kind_of(value: Any) -> str:
    return _KINDS.get(type(value), "null")


def shown(value: str) -> str:
    """A client's string quoted back to it, cut short."""
    return repr(value if len(value) <= 40 else value[:40] + "…")


def listed(values: tuple[str, ...]) -> str:
    """'a', 'b', and 'c', as OpenAI lists supported values."""
    quoted = [f"'{value}'" for value in values]
    if len(quoted) < 3:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + ", and " + quoted[-1]


def invalid_type(where: str, expected: str, value: Any) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid type for '{where}': expected {expected}, but got {kind_of(value)} instead.",
        param=where,
        code="invalid_type",
    )


def invalid_value(where: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, param=where, code="invalid_value")


def missing(where: str) -> InvalidRequest:
    return InvalidRequest(
        f"Missing required parameter: '{where}'.", param=where, code="missing_required_parameter"
    )


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_body")
    return body


def model_of(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest(
            "'model' is required: a catalog title such as \"GPT-4o\" (GET /v1/models lists them).",
            param="model",
            code="missing_required_parameter" if model is None else "invalid_type",
        )
    return model


def _bounds(value: float, where: str, low: float | None, high: float | None, kind: str) -> None:
    if low is not None and value < low:
        raise InvalidRequest(
            f"Invalid '{where}': {kind} below minimum value. "
            f"Expected a value >= {low}, but got {value} instead.",
            param=where,
            code=f"{kind}_below_min_value",
        )
    if high is not None and value > high:
        raise InvalidRequest(
            f"Invalid '{where}': {kind} above maximum value. "
            f"Expected a value <= {high}, but got {value} instead.",
            param=where,
            code=f"{kind}_above_max_value",
        )


def number(value: Any, where: str, low: float | None = None, high: float | None = None) -> None:
    if type(value) is not float and type(value) is not int:
        raise invalid_type(where, "a decimal", value)
    _bounds(value, where, low, high, "decimal")


def integer(value: Any, where: str, low: int | None = None, high: int | None = None) -> None:
    if type(value) is not int:
        raise invalid_type(where, "an integer", value)
    _bounds(value, where, low, high, "integer")


def boolean(value: Any, where: str) -> None:
    if type(value) is not bool:
        raise invalid_type(where, "a boolean", value)


def string(value: Any, where: str, max_length: int | None = None) -> None:
    if type(value) is not str:
        raise invalid_type(where, "a string", value)
    if max_length is not None and len(value) > max_length:
        raise InvalidRequest(
            f"Invalid '{where}': string too long. Expected a string with maximum length "
            f"{max_length}, but got a string with length {len(value)} instead.",
            param=where,
            code="string_above_max_length",
        )


def one_of(value: Any, where: str, allowed: tuple[str, ...]) -> None:
    if type(value) is not str:
        raise invalid_type(where, "a string", value)
    if value not in allowed:
        raise invalid_value(
            where,
            f"Invalid value for '{where}': {shown(value)}. "
            f"Supported values are: {listed(allowed)}.",
        )


def obj(value: Any, where: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise invalid_type(where, "an object", value)
    return value


def array(
    value: Any, where: str, *, nonempty: bool = False, max_length: int | None = None
) -> list[Any]:
    if type(value) is not list:
        raise invalid_type(where, "an array", value)
    if nonempty and not value:
        raise InvalidRequest(
            f"Invalid '{where}': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            param=where,
            code="empty_array",
        )
    if max_length is not None and len(value) > max_length:
        raise InvalidRequest(
            f"Invalid '{where}': array too long. Expected an array with maximum length "
            f"{max_length}, but got an array with length {len(value)} instead.",
            param=where,
            code="array_above_max_length",
        )
    return value


def required(container: dict[str, Any], key: str, where: str) -> Any:
    """container[key], which must be present and not null."""
    value = container.get(key)
    if value is None:
        raise missing(f"{where}.{key}")
    return value
