"""The shape of a Messages API request body, read from the anthropic SDK's own request types.

The SDK's TypedDicts (`anthropic.types.message_create_params`, and `anthropic.types.beta.…` when
the request carries an `anthropic-beta` header) are Anthropic's published wire format: every
field, content block and tool the API takes, betas included (system-role messages, tool
addition/removal blocks, output_config, context_management, tool references, search results…).
A body is checked against them the way the API's validator reports it: the first problem, as
`<path>: Extra inputs are not permitted`, `<path>: Field required`, `<path>: Input should be …`
or `<path>: Input tag '<x>' found using '<key>' does not match any of the expected tags`.
"""

import functools
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any, Literal, Union

import typing_extensions
from anthropic.types import message_count_tokens_params, message_create_params
from anthropic.types.beta import message_count_tokens_params as beta_count_params
from anthropic.types.beta import message_create_params as beta_create_params

# SDK parameters that travel as headers (anthropic-beta, anthropic-workspace-id, …), not body.
HEADER_PARAMS = frozenset({"betas", "user_profile_id", "workspace_id"})
# The sampling parameters the API still takes, though this SDK version no longer declares them
# (their values are checked by the fake's own rules).
SAMPLING = frozenset({"temperature", "top_p", "top_k"})

# List[X], Iterable[X], SequenceNotStr[X] (a typing.Sequence at run time): JSON arrays.
SEQUENCES = (list, Iterable, Sequence)
Problem = tuple[str, str]  # (path, message)


def create_schema(*, beta: bool) -> type:
    module = beta_create_params if beta else message_create_params
    return module.MessageCreateParamsBase


def count_schema(*, beta: bool) -> type:
    module = beta_count_params if beta else message_count_tokens_params
    return module.MessageCountTokensParams


def body_problem(body: dict[str, Any], schema: type, *, stream: bool) -> str | None:
    """The first problem with a request body, as Anthropic words it; None when it is valid."""
    hints = _fields(schema)
    for name in body:
        if name in HEADER_PARAMS or (
            name not in hints and name not in SAMPLING and not (stream and name == "stream")
        ):
            return f"{name}: Extra inputs are not permitted"
    for name in _required(schema):
        if name not in body:
            return f"{name}: Field required"
    if "stream" in body and not isinstance(body["stream"], bool):
        return "stream: Input should be a valid boolean"
    for name, value in body.items():
        if name in hints:
            problem = _check(value, hints[name], name)
            if problem is not None:
                return f"{problem[0]}: {problem[1]}"
    return None


@functools.cache
def _fields(schema: type) -> dict[str, Any]:
    return typing_extensions.get_type_hints(schema)  # Required[...] and the like removed


@functools.cache
def _required(schema: type) -> frozenset[str]:
    return frozenset(getattr(schema, "__required_keys__", ()))


def _is_typeddict(kind: Any) -> bool:
    return isinstance(kind, type) and typing_extensions.is_typeddict(kind)


def _check(value: Any, kind: Any, path: str) -> Problem | None:
    origin = typing.get_origin(kind)
    if kind is Any or kind is object:
        return None
    if origin is Union or origin is types.UnionType:
        return _check_union(value, typing.get_args(kind), path)
    if origin is Literal:
        allowed = typing.get_args(kind)
        if value in allowed and type(value) in {type(a) for a in allowed}:
            return None
        return path, "Input should be " + " or ".join(repr(a) for a in allowed)
    if _is_typeddict(kind):
        return _check_dict(value, kind, path)
    if kind is type(None):
        return None if value is None else (path, "Input should be None")
    if kind is str:
        return None if isinstance(value, str) else (path, "Input should be a valid string")
    if kind is bool:
        return None if isinstance(value, bool) else (path, "Input should be a valid boolean")
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else (path, "Input should be a valid integer")
    if kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else (path, "Input should be a valid number")
    if origin in SEQUENCES:
        if not isinstance(value, list):
            return path, "Input should be a valid list"
        (item,) = typing.get_args(kind) or (Any,)
        for index, element in enumerate(value):
            problem = _check(element, item, f"{path}.{index}")
            if problem is not None:
                return problem
        return None
    if origin is dict:
        if not isinstance(value, dict):
            return path, "Input should be a valid dictionary"
        _key, item = typing.get_args(kind)
        for key, element in value.items():
            problem = _check(element, item, f"{path}.{key}")
            if problem is not None:
                return problem
        return None
    # datetime and other scalars the SDK serialises to strings
    return None if isinstance(value, str) else (path, f"Input should be a valid {kind!r}")


def _check_dict(value: Any, schema: type, path: str) -> Problem | None:
    if not isinstance(value, dict):
        return path, "Input should be a valid dictionary or object"
    hints = _fields(schema)
    for name in value:
        if name not in hints:
            return f"{path}.{name}", "Extra inputs are not permitted"
    for name in _required(schema):
        if name not in value:
            return f"{path}.{name}", "Field required"
    for name, element in value.items():
        problem = _check(element, hints[name], f"{path}.{name}")
        if problem is not None:
            return problem
    return None


def _tag_values(hint: Any) -> tuple[Any, ...] | None:
    """The values a `type` or `role` field may take, when it is a Literal (or an optional one)."""
    if typing.get_origin(hint) is Literal:
        return typing.get_args(hint)
    if typing.get_origin(hint) in (Union, types.UnionType):
        values = [v for arg in typing.get_args(hint) for v in (_tag_values(arg) or ())]
        return tuple(values) or None
    return None


def _fits_tag(schema: type, value: dict[str, Any]) -> bool:
    """Whether a block's `type` (or a message's `role`) is the one this TypedDict is for."""
    hints = _fields(schema)
    for key in ("type", "role"):
        values = _tag_values(hints.get(key))
        if values is None:
            continue
        if key in value:
            return value[key] in values
        return key not in _required(schema)
    return True


def _check_union(value: Any, options: tuple[Any, ...], path: str) -> Problem | None:
    options = _flatten(options)
    if value is None:
        return None if type(None) in options else (path, "Input should be a valid value")
    dicts = [option for option in options if _is_typeddict(option)]
    if isinstance(value, dict) and dicts:
        others = [option for option in options if not _is_typeddict(option)]
        if any(_check(value, option, path) is None for option in others):
            return None
        chosen = [option for option in dicts if _fits_tag(option, value)]
        if not chosen:
            key = "type" if "type" in value else "role" if "role" in value else None
            if key is None:
                return f"{path}.type", "Field required"
            expected = sorted(
                {repr(v) for o in dicts for v in _tag_values(_fields(o).get(key)) or ()}
            )
            return path, (
                f"Input tag {value[key]!r} found using {key!r} does not match any of the "
                f"expected tags: {', '.join(expected)}"
            )
        problems = [_check(value, option, path) for option in chosen]
        return None if None in problems else problems[0]
    problems = [_check(value, option, path) for option in options]
    if None in problems:
        return None
    # Report the problem of the option whose outer shape fits the value (a list for a list…).
    for option, problem in zip(options, problems, strict=True):
        if problem is not None and _shape_fits(value, option):
            return problem
    return path, "Input should be a valid value"


def _flatten(options: tuple[Any, ...]) -> tuple[Any, ...]:
    out: list[Any] = []
    for option in options:
        if typing.get_origin(option) in (Union, types.UnionType):
            out += _flatten(typing.get_args(option))
        else:
            out.append(option)
    return tuple(out)


def _shape_fits(value: Any, option: Any) -> bool:
    origin = typing.get_origin(option)
    if isinstance(value, list):
        return origin in SEQUENCES
    if isinstance(value, dict):
        return origin is dict or _is_typeddict(option)
    return not (origin in (*SEQUENCES, dict) or _is_typeddict(option))
