"""Inbound OpenAI Embeddings: the fields OpenAI documents (input, encoding_format, dimensions,
user), checked before any upstream call; others pass, as on Chat Completions."""

from typing import Any

from proxy.gateway.dialects.validation import (
    array,
    integer,
    invalid_type,
    missing,
    model_of,
    one_of,
    require_object,
    string,
)
from proxy.gateway.errors import InvalidRequest

MAX_INPUTS = 2048
ENCODING_FORMATS = ("float", "base64")
_KIND_NAMES: dict[type, str] = {str: "a string", int: "an integer", list: "an array"}


def validate_embeddings(body: Any) -> str:
    body = require_object(body)
    model = model_of(body)
    _input(body.get("input"))
    if body.get("encoding_format") is not None:
        one_of(body["encoding_format"], "encoding_format", ENCODING_FORMATS)
    if body.get("dimensions") is not None:
        integer(body["dimensions"], "dimensions", 1)
    if body.get("user") is not None:
        string(body["user"], "user")
    return model


def _empty_string(where: str) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid '{where}': empty string. Expected a string with minimum length 1, "
        "but got an empty string instead.",
        param=where,
        code="empty_string",
    )


def _input(value: Any) -> None:
    """A string, or up to 2,048 strings, token ids or arrays of token ids (all one kind)."""
    if value is None:
        raise missing("input")
    if type(value) is str:
        if not value:
            raise _empty_string("input")
        return
    if type(value) is not list:
        raise invalid_type("input", "one of a string or array", value)
    kind = type(array(value, "input", nonempty=True, max_length=MAX_INPUTS)[0])
    if kind not in (str, int, list):
        raise invalid_type("input[0]", "one of a string, integer or array of integers", value[0])
    for index, item in enumerate(value):  # paths are only spelled out for an error
        if type(item) is not kind:
            raise invalid_type(f"input[{index}]", _KIND_NAMES[kind], item)
        if kind is str:
            if not item:
                raise _empty_string(f"input[{index}]")
        elif kind is list:
            if not item:
                array(item, f"input[{index}]", nonempty=True)
            for position, token in enumerate(item):
                if type(token) is not int:
                    raise invalid_type(f"input[{index}][{position}]", "an integer", token)
