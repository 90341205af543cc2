"""OpenAI's Chat Completions and Embeddings APIs as the fake enforces them: the fields, messages and
tools they accept, and the errors OpenAI returns for the rest (tests/fakes/openai_api.py answers)."""

from typing import Any

CHAT_FIELDS = frozenset(
    [
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "messages",
        "metadata",
        "modalities",
        "model",
        "moderation",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    ]
)
EMBEDDING_FIELDS = frozenset({"input", "model", "dimensions", "encoding_format", "user"})
MESSAGE_FIELDS = {
    "system": {"role", "content", "name"},
    "developer": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "name", "tool_calls", "refusal", "audio", "function_call"},
    "tool": {"role", "content", "tool_call_id"},
    "function": {"role", "content", "name"},
}
USER_PARTS = {
    "text": "text",
    "image_url": "image_url",
    "input_audio": "input_audio",
    "file": "file",
}
REASONING_MODELS = ("o1", "o3", "o4", "gpt-5")


class OpenAIError(Exception):
    def __init__(
        self, message: str, param: str | None = None, status: int = 400, code: str | None = None
    ):
        super().__init__(message)
        self.status, self.param, self.code = status, param, code

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": str(self),
                "type": "invalid_request_error",
                "param": self.param,
                "code": self.code,
            }
        }


def masked(key: str) -> str:
    """A key as OpenAI's 401 quotes it: sk-PMafP****…****E873."""
    return key[:8] + "*" * max(len(key) - 12, 3) + key[-4:] if len(key) > 12 else key


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def count_tokens(text: str) -> int:
    """The fake's tokenizer: one token per whitespace-separated word."""
    return len(text.split())


class OpenAIRequestRules:
    """The requests OpenAI's API accepts; the fake's handler calls these before answering."""

    api_key: str  # the one key the fake accepts

    def check_auth(self, headers: dict[str, str]) -> None:
        presented = headers.get("authorization", "").removeprefix("Bearer ")
        if presented != self.api_key:
            # OpenAI's own words: the key presented, masked, and where to find a good one.
            raise OpenAIError(
                f"Incorrect API key provided: {masked(presented)}. You can find your API key "
                "at https://platform.openai.com/account/api-keys.",
                status=401,
                code="invalid_api_key",
            )

    def check_chat(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise OpenAIError("We could not parse the JSON body of your request.")
        for name in body:
            if name not in CHAT_FIELDS:
                raise OpenAIError(f"Unrecognized request argument supplied: {name}")
        if not isinstance(body.get("model"), str):
            raise OpenAIError("you must provide a model parameter", param="model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise OpenAIError("'messages' must contain at least one message.", param="messages")
        for index, message in enumerate(messages):
            self.check_message(index, message)
        if "stream_options" in body and not body.get("stream"):
            raise OpenAIError(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
            )
        options = body.get("stream_options")
        if options is not None and (
            not isinstance(options, dict) or set(options) - {"include_usage", "include_obfuscation"}
        ):
            raise OpenAIError("Invalid 'stream_options'.", param="stream_options")
        for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
            value = body.get(name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise OpenAIError(f"Invalid type for '{name}': expected a number.", param=name)
        temperature = body.get("temperature")
        if isinstance(temperature, int | float) and not 0 <= temperature <= 2:
            raise OpenAIError(
                f"Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got {temperature} instead.",
                param="temperature",
                code="decimal_above_max_value",
            )
        for name in ("max_tokens", "max_completion_tokens", "n", "seed", "top_logprobs"):
            value = body.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise OpenAIError(f"Invalid type for '{name}': expected an integer.", param=name)
        if "max_tokens" in body and body["model"].startswith(REASONING_MODELS):
            raise OpenAIError(
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                param="max_tokens",
                code="unsupported_parameter",
            )
        if body.get("top_logprobs") is not None and not body.get("logprobs"):
            raise OpenAIError(
                "'logprobs' must be set to true when 'top_logprobs' is used.", param="top_logprobs"
            )
        stop = body.get("stop")
        if stop is not None and not (
            isinstance(stop, str)
            or (isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop))
        ):
            raise OpenAIError("Invalid 'stop': up to 4 strings.", param="stop")
        self.check_tools(body)
        fmt = body.get("response_format")
        if fmt is not None:
            kind = fmt.get("type") if isinstance(fmt, dict) else None
            if kind not in ("text", "json_object", "json_schema"):
                raise OpenAIError("Invalid 'response_format.type'.", param="response_format.type")
            if kind == "json_schema" and not isinstance(fmt.get("json_schema"), dict):
                raise OpenAIError(
                    "Missing required parameter: 'response_format.json_schema'.",
                    param="response_format.json_schema",
                )
            if kind == "json_object" and not any(
                "json" in text_of(m.get("content")).lower() for m in messages
            ):
                raise OpenAIError(
                    "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
                    param="messages",
                )

    def check_message(self, index: int, message: Any) -> None:
        where = f"messages.[{index}]"
        if not isinstance(message, dict) or message.get("role") not in MESSAGE_FIELDS:
            raise OpenAIError(f"Invalid value for '{where}.role'.", param=f"{where}.role")
        role = message["role"]
        extra = set(message) - MESSAGE_FIELDS[role]
        if extra:
            raise OpenAIError(
                f"Additional properties are not allowed ('{sorted(extra)[0]}' was unexpected) - '{where}'",
                param=where,
            )
        content = message.get("content")
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise OpenAIError(
                f"Missing required parameter: '{where}.tool_call_id'.",
                param=f"{where}.tool_call_id",
            )
        if content is None and not (role == "assistant" and message.get("tool_calls")):
            raise OpenAIError(
                f"Invalid value for '{where}.content': expected a string, got null.",
                param=f"{where}.content",
            )
        if isinstance(content, list):
            for part_index, part in enumerate(content):
                self.check_part(f"{where}.content.[{part_index}]", role, part)
        elif content is not None and not isinstance(content, str):
            raise OpenAIError(f"Invalid type for '{where}.content'.", param=f"{where}.content")
        for call_index, call in enumerate(message.get("tool_calls") or []):
            if not (
                isinstance(call, dict)
                and call.get("type") == "function"
                and isinstance(call.get("id"), str)
                and isinstance(call.get("function"), dict)
                and isinstance(call["function"].get("arguments"), str)
                and isinstance(call["function"].get("name"), str)
            ):
                raise OpenAIError(
                    f"Invalid '{where}.tool_calls.[{call_index}]'.", param=f"{where}.tool_calls"
                )

    def check_part(self, where: str, role: str, part: Any) -> None:
        kind = part.get("type") if isinstance(part, dict) else None
        allowed = USER_PARTS if role == "user" else {"text": "text", "refusal": "refusal"}
        if kind not in allowed:
            raise OpenAIError(f"Invalid value for '{where}.type'.", param=f"{where}.type")
        if set(part) - {"type", allowed[kind]}:
            raise OpenAIError(f"Additional properties are not allowed - '{where}'", param=where)
        if kind == "image_url":
            image = part.get("image_url")
            if (
                not isinstance(image, dict)
                or not isinstance(image.get("url"), str)
                or set(image) - {"url", "detail"}
            ):
                raise OpenAIError(f"Invalid '{where}.image_url'.", param=f"{where}.image_url")
        elif kind == "text" and not isinstance(part.get("text"), str):
            raise OpenAIError(f"Invalid '{where}.text'.", param=f"{where}.text")

    def check_tools(self, body: dict[str, Any]) -> None:
        tools = body.get("tools")
        if tools is None:
            if body.get("tool_choice") not in (None, "none", "auto"):
                raise OpenAIError(
                    "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
                    param="tool_choice",
                )
            return
        for index, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if (
                tool.get("type") != "function"
                or not isinstance(function, dict)
                or not isinstance(function.get("name"), str)
            ):
                raise OpenAIError(f"Invalid 'tools[{index}]'.", param=f"tools[{index}]")
            if set(function) - {"name", "description", "parameters", "strict"}:
                raise OpenAIError(
                    f"Additional properties are not allowed - 'tools[{index}].function'",
                    param=f"tools[{index}].function",
                )
