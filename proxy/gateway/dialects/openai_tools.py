"""Chat Completions' tools, tool_choice, legacy functions and response_format, as OpenAI
documents them. An entry whose `type` OpenAI does not define passes untouched (see
proxy/gateway/dialects/openai_chat.py)."""

from typing import Any

from proxy.gateway.dialects.validation import (
    array,
    boolean,
    invalid_type,
    obj,
    one_of,
    required,
    string,
)
from proxy.gateway.errors import InvalidRequest

TOOL_CHOICES = ("none", "auto", "required")
FUNCTION_CALLS = ("none", "auto")
GRAMMAR_SYNTAXES = ("lark", "regex")


def check_tools(value: Any, where: str) -> None:
    for index, tool in enumerate(array(value, where)):
        at = f"{where}[{index}]"
        tool = obj(tool, at)
        kind = required(tool, "type", at)
        if kind == "function":
            _function(required(tool, "function", at), f"{at}.function")
        elif kind == "custom":
            _custom(required(tool, "custom", at), f"{at}.custom")
        else:
            string(kind, f"{at}.type")


def check_functions(value: Any, where: str) -> None:
    for index, function in enumerate(array(value, where, nonempty=True, max_length=128)):
        _function(function, f"{where}[{index}]")


def _function(value: Any, where: str) -> None:
    function = obj(value, where)
    name = required(function, "name", where)
    string(name, f"{where}.name")
    if not name:
        raise InvalidRequest(
            f"Invalid '{where}.name': empty string. Expected a string with minimum length 1, "
            "but got an empty string instead.",
            param=f"{where}.name",
            code="empty_string",
        )
    if function.get("description") is not None:
        string(function["description"], f"{where}.description")
    if function.get("parameters") is not None:
        obj(function["parameters"], f"{where}.parameters")
    if function.get("strict") is not None:
        boolean(function["strict"], f"{where}.strict")


def _custom(value: Any, where: str) -> None:
    custom = obj(value, where)
    string(required(custom, "name", where), f"{where}.name")
    if custom.get("description") is not None:
        string(custom["description"], f"{where}.description")
    fmt = custom.get("format")
    if fmt is None:
        return
    at = f"{where}.format"
    kind = required(obj(fmt, at), "type", at)
    if kind == "grammar":
        grammar = obj(required(fmt, "grammar", at), f"{at}.grammar")
        string(required(grammar, "definition", f"{at}.grammar"), f"{at}.grammar.definition")
        syntax = required(grammar, "syntax", f"{at}.grammar")
        one_of(syntax, f"{at}.grammar.syntax", GRAMMAR_SYNTAXES)
    elif kind != "text":
        one_of(kind, f"{at}.type", ("text", "grammar"))


def check_tool_choice(value: Any, where: str) -> None:
    if type(value) is str:
        one_of(value, where, TOOL_CHOICES)
        return
    if type(value) is not dict:
        raise invalid_type(where, "one of a string or object", value)
    kind = required(value, "type", where)
    if kind in ("function", "custom"):
        named = obj(required(value, kind, where), f"{where}.{kind}")
        string(required(named, "name", f"{where}.{kind}"), f"{where}.{kind}.name")
    elif kind == "allowed_tools":
        at = f"{where}.allowed_tools"
        allowed = obj(required(value, "allowed_tools", where), at)
        one_of(required(allowed, "mode", at), f"{at}.mode", ("auto", "required"))
        for index, tool in enumerate(array(required(allowed, "tools", at), f"{at}.tools")):
            obj(tool, f"{at}.tools[{index}]")
    else:
        string(kind, f"{where}.type")


def check_function_call(value: Any, where: str) -> None:
    if type(value) is str:
        one_of(value, where, FUNCTION_CALLS)
    elif type(value) is dict:
        string(required(value, "name", where), f"{where}.name")
    else:
        raise invalid_type(where, "one of a string or object", value)


def check_response_format(value: Any, where: str) -> None:
    kind = required(obj(value, where), "type", where)
    if kind == "json_schema":
        at = f"{where}.json_schema"
        spec = obj(required(value, "json_schema", where), at)
        string(required(spec, "name", at), f"{at}.name")
        if spec.get("description") is not None:
            string(spec["description"], f"{at}.description")
        if spec.get("schema") is not None:
            obj(spec["schema"], f"{at}.schema")
        if spec.get("strict") is not None:
            boolean(spec["strict"], f"{at}.strict")
    elif kind != "text" and kind != "json_object":
        string(kind, f"{where}.type")
