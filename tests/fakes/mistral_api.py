"""A strict fake of Mistral's chat and embeddings APIs (fields from the mistralai SDK).

Unknown fields get Mistral's 422 validation error ({"object": "error", "message": {"detail":
[{"type": "extra_forbidden", "loc": ["body", …]}]}, …}); tool-call ids must be 9 characters
of [a-zA-Z0-9]; usage arrives on the last chunk of a stream, with no stream_options.
"""

import re
from typing import Any, ClassVar

from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.openai_rules import OpenAIError, count_tokens, text_of
from tests.fakes.server import Scripted, sse

MISTRAL_CHAT_FIELDS = frozenset(
    [
        "model",
        "messages",
        "temperature",
        "top_p",
        "max_tokens",
        "stream",
        "stop",
        "random_seed",
        "metadata",
        "response_format",
        "tools",
        "tool_choice",
        "presence_penalty",
        "frequency_penalty",
        "min_tokens",
        "repetition_penalty",
        "top_k",
        "logprobs",
        "top_logprobs",
        "prompt_logprobs",
        "top_prompt_logprobs",
        "n",
        "prediction",
        "parallel_tool_calls",
        "reasoning_effort",
        "prompt_mode",
        "guardrails",
        "prompt_cache_key",
        "service_tier",
        "safe_prompt",
    ]
)
MISTRAL_EMBEDDING_FIELDS = frozenset(
    {"model", "input", "metadata", "output_dimension", "output_dtype", "encoding_format"}
)
MISTRAL_MESSAGE_FIELDS = {
    "system": {"role", "content"},
    "user": {"role", "content"},
    "assistant": {"role", "content", "tool_calls", "prefix"},
    "tool": {"role", "content", "tool_call_id", "name"},
}
TOOL_CALL_ID = re.compile(r"[a-zA-Z0-9]{9}")


class MistralValidation(OpenAIError):
    def __init__(
        self,
        loc: list[Any],
        kind: str = "extra_forbidden",
        msg: str = "Extra inputs are not permitted",
    ):
        super().__init__(msg, status=422)
        self.loc, self.kind = loc, kind


class FakeMistral(FakeOpenAI):
    provider_name = "Mistral"
    models_owner = "mistralai"
    listed_models = ("mistral-large-latest", "mistral-small-latest", "mistral-embed")
    response_headers: ClassVar[dict[str, str]] = {
        "x-kong-request-id": "3c8b6a0e5d4f2a1b9c7e6d5f4a3b2c1d",
        "x-kong-upstream-latency": "187",
    }

    def __init__(self, api_key: str = "fake-mistral-key") -> None:
        super().__init__(api_key)
        self.reply = "Bonjour from the fake Mistral model."

    def error_body(self, error: OpenAIError) -> dict[str, Any]:
        if isinstance(error, MistralValidation):
            # Pydantic's own error dicts, its documentation URL included.
            detail = [
                {
                    "type": error.kind,
                    "loc": error.loc,
                    "msg": str(error),
                    "input": None,
                    "url": f"https://errors.pydantic.dev/2.10/v/{error.kind}",
                }
            ]
            return {
                "object": "error",
                "message": {"detail": detail},
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        if error.status == 401:
            return {"message": "Unauthorized", "request_id": "9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a"}
        return {
            "object": "error",
            "message": str(error),
            "type": "invalid_request_error",
            "param": error.param,
            "code": error.code,
        }

    def check_chat(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise MistralValidation(["body"], "model_attributes_type", "Input should be an object")
        for name in body:
            if name not in MISTRAL_CHAT_FIELDS:
                raise MistralValidation(["body", name])
        if not isinstance(body.get("model"), str):
            raise MistralValidation(["body", "model"], "missing", "Field required")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise MistralValidation(["body", "messages"], "missing", "Field required")
        for index, message in enumerate(messages):
            role = message.get("role") if isinstance(message, dict) else None
            if role not in MISTRAL_MESSAGE_FIELDS:
                raise MistralValidation(
                    ["body", "messages", index],
                    "union_tag_invalid",
                    f"Input tag '{role}' found using 'role' does not match any of the expected tags",
                )
            for name in set(message) - MISTRAL_MESSAGE_FIELDS[role]:
                raise MistralValidation(["body", "messages", index, role, name])
            ids = [call.get("id") for call in message.get("tool_calls") or []]
            if role == "tool":
                ids.append(message.get("tool_call_id"))
            for call_id in ids:
                if not isinstance(call_id, str) or not TOOL_CALL_ID.fullmatch(call_id):
                    raise OpenAIError(
                        f"Tool call id was {call_id} but must be a-z, A-Z, 0-9, with a length of 9.",
                        code="3280",
                    )
            content = message.get("content")
            if isinstance(content, list):
                for part in content:
                    kind = part.get("type") if isinstance(part, dict) else None
                    if kind not in ("text", "image_url"):
                        raise MistralValidation(
                            ["body", "messages", index, role, "content"],
                            "union_tag_invalid",
                            "bad chunk",
                        )
        for name in ("max_tokens", "random_seed", "n"):
            value = body.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise MistralValidation(
                    ["body", name], "int_type", "Input should be a valid integer"
                )
        if body.get("tools") is not None:
            self.check_tools(body)

    def tool_call_id(self, seed: int) -> str:
        return f"Ab{seed:07d}"

    def usage(
        self, body: dict[str, Any], text: str | None, calls: list[dict[str, Any]], choices: int
    ) -> dict[str, Any]:
        prompt = sum(count_tokens(text_of(m.get("content"))) + 3 for m in body["messages"])
        completion = choices * (
            count_tokens(text or "")
            + sum(count_tokens(c["function"]["arguments"]) + 2 for c in calls)
        )
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    async def chat(self, body: dict[str, Any], send: Any, scripted: Scripted | None) -> None:
        if not body.get("stream"):
            await super().chat(body, send, scripted)
            return
        text, calls = self.plan(body)
        choices = body.get("n") or 1
        usage = self.usage(body, text, calls, choices)
        head = {
            "id": "cmpl-fake0001",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": body["model"],
        }
        events = []
        for index in range(choices):
            events.append(
                sse(
                    {
                        **head,
                        "choices": [
                            {
                                "index": index,
                                "delta": {"role": "assistant", "content": ""},
                                "finish_reason": None,
                            }
                        ],
                    }
                )
            )
            for i, word in enumerate((text or "").split(" ") if text else []):
                events.append(
                    sse(
                        {
                            **head,
                            "choices": [
                                {
                                    "index": index,
                                    "delta": {"content": word if i == 0 else " " + word},
                                    "finish_reason": None,
                                }
                            ],
                        }
                    )
                )
            if calls:  # Mistral sends each tool call whole, in one chunk
                events.append(
                    sse(
                        {
                            **head,
                            "choices": [
                                {
                                    "index": index,
                                    "delta": {
                                        "tool_calls": [
                                            {**c, "index": n} for n, c in enumerate(calls)
                                        ]
                                    },
                                    "finish_reason": None,
                                }
                            ],
                        }
                    )
                )
        last = {
            **head,
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": ""},
                    "finish_reason": "tool_calls" if calls else "stop",
                }
            ],
            "usage": usage,
        }
        events += [sse(last), b"data: [DONE]\n\n"]
        await self.send_events(send, events, scripted)

    def check_embeddings(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise MistralValidation(["body"], "model_attributes_type", "Input should be an object")
        for name in body:
            if name not in MISTRAL_EMBEDDING_FIELDS:
                raise MistralValidation(["body", name])
        if "input" not in body:
            raise MistralValidation(["body", "input"], "missing", "Field required")

    def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        result = super().embed({**body, "dimensions": body.get("output_dimension")})
        result["id"] = "embd-fake"
        result["usage"]["completion_tokens"] = 0
        return result
