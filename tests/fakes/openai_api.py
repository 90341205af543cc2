"""A strict fake of OpenAI's Chat Completions, Embeddings, Models (GET /v1/models) and Responses
(tests/fakes/openai_responses.py) APIs.

Request fields are the openai SDK's own definitions (what the real API accepts); anything else
is refused the way OpenAI refuses it: HTTP 400, {"error": {...}}, "Unrecognized request
argument supplied: <name>". Answers are deterministic so tests can compute exact costs.
"""

import base64
import struct
import time
from typing import Any, ClassVar

from tests.fakes.openai_responses import ResponsesAnswers
from tests.fakes.openai_rules import (
    EMBEDDING_FIELDS,
    REASONING_MODELS,
    OpenAIError,
    OpenAIRequestRules,
    count_tokens,
    text_of,
)
from tests.fakes.server import FakeAPI, Scripted, sse


class FakeOpenAI(ResponsesAnswers, OpenAIRequestRules, FakeAPI):
    provider_name = "OpenAI"
    # What api.openai.com sends with every answer: the account's organisation and project,
    # its own rate limits, request id and Cloudflare's cookie.
    response_headers: ClassVar[dict[str, str]] = {
        "openai-organization": "user-fakeorg4uQ9cX2nLp7Ws3Kd",
        "openai-project": "proj_FakeProj9KoeXdtHe0YQJbs",
        "openai-processing-ms": "211",
        "openai-version": "2020-10-01",
        "x-request-id": "req_5f1c0ffee0ddba11fa11bac4d00dfeed",
        "x-ratelimit-limit-requests": "10000",
        "x-ratelimit-remaining-requests": "9999",
        "set-cookie": "__cf_bm=fakecookie.abc-1700000000-1.0.1.1-xyz; path=/; "
        "domain=.api.openai.com; HttpOnly; Secure; SameSite=None",
        "server": "cloudflare",
        "cf-ray": "8f1e2d3c4b5a6978-AMS",
    }
    chat_path = "/v1/chat/completions"
    responses_path = "/v1/responses"
    embeddings_path = "/v1/embeddings"
    models_path = "/v1/models"
    # GET /v1/models: the models this account may use (id, created, owned_by).
    models_owner = "system"
    listed_models: ClassVar[tuple[str, ...]] = ("gpt-4o", "gpt-4o-mini", "text-embedding-3-small")

    def __init__(self, api_key: str = "sk-fake-openai") -> None:
        super().__init__()
        self.api_key = api_key
        self.cached_tokens = 0  # reported as prompt_tokens_details.cached_tokens
        self.reasoning_tokens = 0  # added to completion_tokens for reasoning models
        self.reply = "Hello from the fake model, happy to help."
        self.stored: dict[str, dict[str, Any]] = {}  # the responses stored, by id
        # Send OpenAI's mid-stream error event (data: {"error": {…}}) after N events.
        self.stream_error_after: int | None = None
        self.stream_error: dict[str, Any] = {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error",
            "param": None,
            "code": None,
        }

    # --- answering ----------------------------------------------------------------------
    async def handle(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: Any,
        send: Any,
        scripted: Scripted | None,
    ) -> None:
        try:
            self.check_auth(headers)
            if method == "POST" and path == self.chat_path:
                self.check_chat(body)
                await self.chat(body, send, scripted)
            elif method == "POST" and path == self.responses_path:
                self.check_responses(body)
                await self.responses(body, send, scripted)
            elif method == "POST" and path == self.embeddings_path:
                self.check_embeddings(body)
                await self.send_json(send, 200, self.embed(body))
            elif method == "GET" and path == self.models_path:
                await self.send_json(send, 200, self.models_list())
            else:
                raise OpenAIError(f"Invalid URL ({method} {path})", status=404)
        except OpenAIError as error:
            await self.send_json(send, error.status, self.error_body(error))

    def error_body(self, error: OpenAIError) -> dict[str, Any]:
        return error.body()

    def models_list(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {
                    "id": model,
                    "object": "model",
                    "created": 1715367049,
                    "owned_by": self.models_owner,
                }
                for model in self.listed_models
            ],
        }

    def plan(self, body: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
        """The answer: text, or tool calls when tools are offered and no tool result came yet."""
        messages = body["messages"]
        last = messages[-1]
        tools = body.get("tools") or []
        if tools and body.get("tool_choice") != "none" and last["role"] != "tool":
            name = tools[0]["function"]["name"]
            return None, [
                {
                    "id": self.tool_call_id(len(messages)),
                    "type": "function",
                    "function": {"name": name, "arguments": '{"city": "Paris"}'},
                }
            ]
        if last["role"] == "tool":
            return f"The tool said: {text_of(last.get('content'))}", []
        fmt = (body.get("response_format") or {}).get("type")
        if fmt in ("json_object", "json_schema"):
            return '{"answer": "hello", "ok": true}', []
        return self.reply, []

    def tool_call_id(self, seed: int) -> str:
        return f"call_fake{seed:04d}abcdefghij"

    def usage(
        self, body: dict[str, Any], text: str | None, calls: list[dict[str, Any]], choices: int
    ) -> dict[str, Any]:
        prompt = sum(count_tokens(text_of(m.get("content"))) + 3 for m in body["messages"])
        completion = choices * (
            count_tokens(text or "")
            + sum(count_tokens(c["function"]["arguments"]) + 2 for c in calls)
        )
        reasoning = self.reasoning_tokens if body["model"].startswith(REASONING_MODELS) else 0
        cached = min(self.cached_tokens, prompt)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion + reasoning,
            "total_tokens": prompt + completion + reasoning,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    async def chat(self, body: dict[str, Any], send: Any, scripted: Scripted | None) -> None:
        text, calls = self.plan(body)
        choices = body.get("n") or 1
        usage = self.usage(body, text, calls, choices)
        head = {
            "id": "chatcmpl-fake0001",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": "fp_fake",
            # The tier served: flex or priority when asked for, else the project's default.
            "service_tier": body["service_tier"]
            if body.get("service_tier") in ("flex", "priority")
            else "default",
        }
        finish = "tool_calls" if calls else "stop"
        if not body.get("stream"):
            message: dict[str, Any] = {
                "role": "assistant",
                "content": text,
                "refusal": None,
                "annotations": [],
            }
            if calls:
                message["tool_calls"] = calls
            await self.send_json(
                send,
                200,
                {
                    **head,
                    "object": "chat.completion",
                    "choices": [
                        {"index": i, "message": message, "logprobs": None, "finish_reason": finish}
                        for i in range(choices)
                    ],
                    "usage": usage,
                },
            )
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        events = self.stream_events(head, text, calls, choices, finish, usage, include_usage)
        if self.stream_error_after is not None:
            events = [*events[: self.stream_error_after], sse({"error": self.stream_error})]
        await self.send_events(send, events, scripted)

    def stream_events(
        self,
        head: dict[str, Any],
        text: str | None,
        calls: list[dict[str, Any]],
        choices: int,
        finish: str,
        usage: dict[str, Any],
        include_usage: bool,
    ) -> list[bytes]:
        def chunk(index: int, delta: dict[str, Any], reason: str | None = None) -> bytes:
            data: dict[str, Any] = {
                **head,
                "object": "chat.completion.chunk",
                "choices": [
                    {"index": index, "delta": delta, "logprobs": None, "finish_reason": reason}
                ],
            }
            if include_usage:
                data["usage"] = None
            return sse(data)

        events = []
        for index in range(choices):
            events.append(
                chunk(
                    index,
                    {
                        "role": "assistant",
                        "content": "" if text is not None else None,
                        "refusal": None,
                    },
                )
            )
            if text is not None:
                words = text.split(" ")
                events += [
                    chunk(index, {"content": word if i == 0 else " " + word})
                    for i, word in enumerate(words)
                ]
            for call_index, call in enumerate(calls):
                events.append(
                    chunk(
                        index,
                        {
                            "tool_calls": [
                                {
                                    "index": call_index,
                                    "id": call["id"],
                                    "type": "function",
                                    "function": {"name": call["function"]["name"], "arguments": ""},
                                }
                            ]
                        },
                    )
                )
                arguments = call["function"]["arguments"]
                for start in range(0, len(arguments), 5):
                    events.append(
                        chunk(
                            index,
                            {
                                "tool_calls": [
                                    {
                                        "index": call_index,
                                        "function": {"arguments": arguments[start : start + 5]},
                                    }
                                ]
                            },
                        )
                    )
            events.append(chunk(index, {}, finish))
        if include_usage:
            events.append(
                sse(
                    {
                        **head,
                        "object": "chat.completion.chunk",
                        "choices": [],
                        "usage": usage,
                    }
                )
            )
        events.append(b"data: [DONE]\n\n")
        return events

    def check_embeddings(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise OpenAIError("We could not parse the JSON body of your request.")
        for name in body:
            if name not in EMBEDDING_FIELDS:
                raise OpenAIError(f"Unrecognized request argument supplied: {name}")
        text = body.get("input")
        if not (isinstance(text, str) or (isinstance(text, list) and text)):
            raise OpenAIError("'input' is a required property", param="input")
        if body.get("encoding_format", "float") not in ("float", "base64"):
            raise OpenAIError("Invalid value for 'encoding_format'.", param="encoding_format")

    def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        size = body.get("dimensions") or 8
        data = []
        tokens = 0
        for index, item in enumerate(inputs):
            tokens += count_tokens(item) if isinstance(item, str) else len(item)
            vector = [round(0.1 * (index + 1) * (d + 1), 4) for d in range(size)]
            encoded: Any = vector
            if body.get("encoding_format") == "base64":
                encoded = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        return {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
