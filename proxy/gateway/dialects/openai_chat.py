"""Inbound OpenAI Chat Completions: every field OpenAI documents, checked before any upstream call.

The types, enums and ranges are OpenAI's own (the pinned openai SDK's completion_create_params and
OpenAI's OpenAPI spec), and so are the error words and codes. What only one provider limits stays
with its adapter (Claude's temperature up to 1, n = 1 outside OpenAI). Fields OpenAI does not
define pass untouched: OpenAI-compatible servers take extensions (vLLM's top_k), and the
translating adapters refuse what they cannot honour by name. So does an entry whose `type` OpenAI
does not define in a content part, tool, tool call, tool_choice or response_format.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from proxy.gateway.dialects.openai_messages import check_messages
from proxy.gateway.dialects.openai_tools import (
    check_function_call,
    check_functions,
    check_response_format,
    check_tool_choice,
    check_tools,
)
from proxy.gateway.dialects.validation import (
    array,
    boolean,
    integer,
    invalid_type,
    invalid_value,
    model_of,
    number,
    obj,
    one_of,
    require_object,
    required,
    shown,
    string,
)
from proxy.gateway.errors import InvalidRequest

EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority", "fast")
LEVELS = ("low", "medium", "high")  # verbosity, web_search_options.search_context_size
MODALITIES = ("text", "audio")
AUDIO_FORMATS = ("wav", "aac", "mp3", "flac", "opus", "pcm16")
INT64 = 2**63
METADATA_PAIRS, METADATA_KEY_LENGTH, METADATA_VALUE_LENGTH = 16, 64, 512


@dataclass(frozen=True, slots=True)
class ChatCall:
    model: str
    stream: bool
    include_usage: bool


def validate_chat(body: Any) -> ChatCall:
    body = require_object(body)
    model = model_of(body)
    check_messages(body.get("messages"))
    for name, value in body.items():
        check = FIELDS.get(name)
        if check is not None and value is not None:  # null is the default of every field
            check(value, name)
    stream = body.get("stream") is True
    options = body.get("stream_options")
    if options is not None and not stream:
        raise invalid_value(
            "stream_options",
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        )
    if body.get("top_logprobs") is not None and body.get("logprobs") is not True:
        raise invalid_value(
            "top_logprobs", "'logprobs' must be set to true when 'top_logprobs' is used."
        )
    return ChatCall(model, stream, bool(options and options.get("include_usage")))


def _enum(allowed: tuple[str, ...]) -> Callable[[Any, str], None]:
    def check(value: Any, where: str) -> None:
        one_of(value, where, allowed)

    return check


def _temperature(value: Any, where: str) -> None:
    number(value, where, 0, 2)


def _top_p(value: Any, where: str) -> None:
    number(value, where, 0, 1)


def _penalty(value: Any, where: str) -> None:
    number(value, where, -2, 2)


def _max_tokens(value: Any, where: str) -> None:
    integer(value, where, 1)


def _n(value: Any, where: str) -> None:
    integer(value, where, 1, 128)


def _seed(value: Any, where: str) -> None:
    integer(value, where, -INT64, INT64 - 1)


def _top_logprobs(value: Any, where: str) -> None:
    integer(value, where, 0, 20)


def _stop(value: Any, where: str) -> None:
    if type(value) is str:
        return
    if type(value) is not list:
        raise invalid_type(where, "one of a string or array of strings", value)
    for index, item in enumerate(array(value, where, max_length=4)):
        string(item, f"{where}[{index}]")


def _stream_options(value: Any, where: str) -> None:
    options = obj(value, where)
    for key in ("include_usage", "include_obfuscation"):
        if options.get(key) is not None:
            boolean(options[key], f"{where}.{key}")


def _logit_bias(value: Any, where: str) -> None:
    for token, bias in obj(value, where).items():
        if not (token.isascii() and token.isdigit()):
            raise invalid_value(
                where,
                f"Invalid key in '{where}': {shown(token)}. You should only be submitting "
                "non-negative integers (token ids).",
            )
        integer(bias, f"{where}.{token}", -100, 100)


def _metadata(value: Any, where: str) -> None:
    pairs = obj(value, where)
    if len(pairs) > METADATA_PAIRS:
        raise InvalidRequest(
            f"Invalid '{where}': too many properties. Expected an object with at most "
            f"{METADATA_PAIRS} properties, but got an object with {len(pairs)} properties instead.",
            param=where,
            code="object_above_max_properties",
        )
    for key, text in pairs.items():
        if len(key) > METADATA_KEY_LENGTH:
            raise InvalidRequest(
                f"Invalid '{where}': key too long. Expected keys with maximum length "
                f"{METADATA_KEY_LENGTH}, but got a key with length {len(key)} instead.",
                param=where,
                code="string_above_max_length",
            )
        string(text, f"{where}.{key}", METADATA_VALUE_LENGTH)


def _modalities(value: Any, where: str) -> None:
    for index, item in enumerate(array(value, where)):
        one_of(item, f"{where}[{index}]", MODALITIES)


def _audio(value: Any, where: str) -> None:
    audio = obj(value, where)
    one_of(required(audio, "format", where), f"{where}.format", AUDIO_FORMATS)
    voice = required(audio, "voice", where)
    if type(voice) is dict:
        string(required(voice, "id", f"{where}.voice"), f"{where}.voice.id")
    elif type(voice) is not str:
        raise invalid_type(f"{where}.voice", "one of a string or object", voice)


def _prediction(value: Any, where: str) -> None:
    prediction = obj(value, where)
    one_of(required(prediction, "type", where), f"{where}.type", ("content",))
    content = required(prediction, "content", where)
    if type(content) is str:
        return
    if type(content) is not list:
        raise invalid_type(f"{where}.content", "one of a string or array of objects", content)
    for index, part in enumerate(array(content, f"{where}.content", nonempty=True)):
        at = f"{where}.content[{index}]"
        one_of(required(obj(part, at), "type", at), f"{at}.type", ("text",))
        string(required(part, "text", at), f"{at}.text")


def _web_search_options(value: Any, where: str) -> None:
    options = obj(value, where)
    if options.get("search_context_size") is not None:
        one_of(options["search_context_size"], f"{where}.search_context_size", LEVELS)
    location = options.get("user_location")
    if location is None:
        return
    at = f"{where}.user_location"
    one_of(required(obj(location, at), "type", at), f"{at}.type", ("approximate",))
    approximate = obj(required(location, "approximate", at), f"{at}.approximate")
    for key in ("city", "country", "region", "timezone"):
        if approximate.get(key) is not None:
            string(approximate[key], f"{at}.approximate.{key}")


def _moderation(value: Any, where: str) -> None:
    moderation = obj(value, where)
    string(required(moderation, "model", where), f"{where}.model")
    policy = moderation.get("policy")
    if policy is None:
        return
    obj(policy, f"{where}.policy")
    for side in ("input", "output"):
        if policy.get(side) is not None:
            at = f"{where}.policy.{side}"
            one_of(required(obj(policy[side], at), "mode", at), f"{at}.mode", ("score", "block"))


def _prompt_cache_options(value: Any, where: str) -> None:
    options = obj(value, where)
    if options.get("mode") is not None:
        one_of(options["mode"], f"{where}.mode", ("implicit", "explicit"))
    if options.get("ttl") is not None:
        one_of(options["ttl"], f"{where}.ttl", ("30m",))


# Every documented field but model and messages (checked first), with its check.
FIELDS: dict[str, Callable[[Any, str], None]] = {
    "audio": _audio,
    "frequency_penalty": _penalty,
    "function_call": check_function_call,
    "functions": check_functions,
    "logit_bias": _logit_bias,
    "logprobs": boolean,
    "max_completion_tokens": _max_tokens,
    "max_tokens": _max_tokens,
    "metadata": _metadata,
    "modalities": _modalities,
    "moderation": _moderation,
    "n": _n,
    "parallel_tool_calls": boolean,
    "prediction": _prediction,
    "presence_penalty": _penalty,
    "prompt_cache_key": string,
    "prompt_cache_options": _prompt_cache_options,
    "prompt_cache_retention": _enum(("in_memory", "24h")),
    "reasoning_effort": _enum(EFFORTS),
    "response_format": check_response_format,
    "safety_identifier": string,
    "seed": _seed,
    "service_tier": _enum(SERVICE_TIERS),
    "stop": _stop,
    "store": boolean,
    "stream": boolean,
    "stream_options": _stream_options,
    "temperature": _temperature,
    "tool_choice": check_tool_choice,
    "tools": check_tools,
    "top_logprobs": _top_logprobs,
    "top_p": _top_p,
    "user": string,
    "verbosity": _enum(LEVELS),
    "web_search_options": _web_search_options,
}
