"""A strict fake of OpenAI's Responses API (POST /v1/responses), mixed into FakeOpenAI.

Request fields are the pinned openai SDK's (ResponseCreateParams); anything else is refused as
the Responses API refuses it ("Unknown parameter: 'max_tokens'.", code unknown_parameter), and
so are wrong types, a missing input, a max_output_tokens under 16, tools in Chat Completions'
nested shape, a function_call_output with no function_call before it (store: false, no
previous response), an unknown previous_response_id, and reasoning or temperature on models
that refuse them. Answers are deterministic (one token per word, 3 per input item) and stored
unless `store` is false, so previous_response_id works; streams send every documented event
in order with sequence numbers, and no [DONE].
"""

import itertools
import time
from typing import Any

from tests.fakes.openai_rules import REASONING_MODELS, OpenAIError, count_tokens
from tests.fakes.server import Scripted, sse

RESPONSES_FIELDS = frozenset(
    {
        "access_programs",
        "background",
        "background_options",
        # Not in the pinned SDK's params, but the API takes it: Codex sends it on every turn.
        "client_metadata",
        "context_management",
        "conversation",
        "image",
        "include",
        "input",
        "instructions",
        "max_output_tokens",
        "max_tool_calls",
        "metadata",
        "model",
        "moderation",
        "parallel_tool_calls",
        "previous_response_id",
        "prompt",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "reasoning",
        "safety_identifier",
        "service_tier",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "text",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "truncation",
        "user",
    }
)
TOOL_TYPES = frozenset(
    {
        "function",
        "file_search",
        "computer",
        "computer_use_preview",
        "web_search",
        "web_search_2025_08_26",
        "web_search_preview",
        "web_search_preview_2025_03_11",
        "mcp",
        "code_interpreter",
        "programmatic_tool_calling",
        "image_generation",
        "local_shell",
        "shell",
        "custom",
        "namespace",
        "tool_search",
        "apply_patch",
    }
)
WEB_SEARCH = ("web_search", "web_search_preview")
ITEM_TYPES = frozenset(
    {
        "message",
        "file_search_call",
        "computer_call",
        "computer_call_output",
        "web_search_call",
        "function_call",
        "function_call_output",
        "tool_search_call",
        "tool_search_output",
        "reasoning",
        "compaction",
        "image_generation_call",
        "code_interpreter_call",
        "local_shell_call",
        "local_shell_call_output",
        "shell_call",
        "shell_call_output",
        "apply_patch_call",
        "apply_patch_call_output",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "mcp_call",
        "custom_tool_call",
        "custom_tool_call_output",
        "item_reference",
    }
)
ROLES = ("user", "assistant", "system", "developer")
INPUT_PARTS = ("input_text", "input_image", "input_file")
OUTPUT_PARTS = ("output_text", "refusal")
INCLUDABLE = frozenset(
    {
        "file_search_call.results",
        "web_search_call.results",
        "web_search_call.action.sources",
        "message.input_image.image_url",
        "computer_call_output.output.image_url",
        "code_interpreter_call.outputs",
        "reasoning.encrypted_content",
        "message.output_text.logprobs",
    }
)
MIN_OUTPUT_TOKENS = 16


def _listed(values: Any) -> str:
    return ", ".join(f"'{value}'" for value in values)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class ResponsesRules:
    """What POST /v1/responses accepts; FakeOpenAI answers what passes."""

    stored: dict[str, dict[str, Any]]

    def check_responses(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise OpenAIError("We could not parse the JSON body of your request.")
        for name in body:
            if name not in RESPONSES_FIELDS:
                raise OpenAIError(
                    f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter"
                )
        model = body.get("model")
        if not isinstance(model, str):
            raise OpenAIError(
                "Missing required parameter: 'model'.",
                param="model",
                code="missing_required_parameter",
            )
        given = body.get("input")
        if given is None and body.get("prompt") is None and body.get("conversation") is None:
            raise OpenAIError(
                "Missing required parameter: 'input'.",
                param="input",
                code="missing_required_parameter",
            )
        if given is not None and not isinstance(given, str | list):
            raise OpenAIError(
                "Invalid type for 'input': expected one of a string or array of input items.",
                param="input",
                code="invalid_type",
            )
        for name in ("stream", "store", "background", "parallel_tool_calls"):
            if body.get(name) is not None and not isinstance(body[name], bool):
                raise OpenAIError(
                    f"Invalid type for '{name}': expected a boolean.",
                    param=name,
                    code="invalid_type",
                )
        if body.get("stream_options") is not None and not body.get("stream"):
            raise OpenAIError(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
            )
        for name, low in (("max_output_tokens", MIN_OUTPUT_TOKENS), ("max_tool_calls", 0)):
            value = body.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise OpenAIError(
                    f"Invalid type for '{name}': expected an integer.",
                    param=name,
                    code="invalid_type",
                )
            if value < low:
                raise OpenAIError(
                    f"Invalid '{name}': integer below minimum value. Expected a value >= {low}, "
                    f"but got {value} instead.",
                    param=name,
                    code="integer_below_min_value",
                )
        reasoning_model = model.startswith(REASONING_MODELS)
        if body.get("reasoning") is not None and not reasoning_model:
            raise OpenAIError(
                "Unsupported parameter: 'reasoning.effort' is not supported with this model.",
                param="reasoning.effort",
                code="unsupported_parameter",
            )
        if body.get("temperature") is not None and reasoning_model:
            raise OpenAIError(
                "Unsupported parameter: 'temperature' is not supported with this model.",
                param="temperature",
                code="unsupported_parameter",
            )
        for index, name in enumerate(body.get("include") or ()):
            if name not in INCLUDABLE:
                raise OpenAIError(
                    f"Invalid value: '{name}'. Supported values are: {_listed(sorted(INCLUDABLE))}.",
                    param=f"include[{index}]",
                    code="invalid_value",
                )
        self.check_response_tools(body)
        self.check_text(body)
        previous = body.get("previous_response_id")
        if previous is not None and previous not in self.stored:
            raise OpenAIError(
                f"Previous response with id '{previous}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        if isinstance(given, list):
            self.check_items(given, previous)

    def check_response_tools(self, body: dict[str, Any]) -> None:
        tools = body.get("tools")
        if tools is not None and not isinstance(tools, list):
            raise OpenAIError("Invalid type for 'tools': expected an array.", param="tools")
        for index, tool in enumerate(tools or ()):
            where = f"tools[{index}]"
            kind = tool.get("type") if isinstance(tool, dict) else None
            if kind not in TOOL_TYPES:
                raise OpenAIError(
                    f"Invalid value: '{kind}'. Supported values are: {_listed(sorted(TOOL_TYPES))}.",
                    param=f"{where}.type",
                    code="invalid_value",
                )
            if kind == "function":
                if not isinstance(tool.get("name"), str):  # chat's {"function": {...}} shape
                    raise OpenAIError(
                        f"Missing required parameter: '{where}.name'.",
                        param=f"{where}.name",
                        code="missing_required_parameter",
                    )
                extra = set(tool) - {"type", "name", "description", "parameters", "strict"}
                if extra:
                    raise OpenAIError(
                        f"Unknown parameter: '{where}.{sorted(extra)[0]}'.",
                        param=f"{where}.{sorted(extra)[0]}",
                        code="unknown_parameter",
                    )
        choice = body.get("tool_choice")
        if isinstance(choice, str) and choice not in ("none", "auto", "required"):
            raise OpenAIError(
                f"Invalid value: '{choice}'. Supported values are: 'none', 'auto', and 'required'.",
                param="tool_choice",
                code="invalid_value",
            )
        if isinstance(choice, dict) and choice.get("type") == "function":
            names = {t.get("name") for t in tools or () if t.get("type") == "function"}
            if choice.get("name") not in names:
                raise OpenAIError(
                    f"Tool choice '{choice.get('name')}' not found in 'tools' parameter.",
                    param="tool_choice",
                )

    def check_text(self, body: dict[str, Any]) -> None:
        text = body.get("text")
        if text is None:
            return
        fmt = text.get("format") if isinstance(text, dict) else None
        if fmt is None:
            return
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind not in ("text", "json_object", "json_schema"):
            raise OpenAIError(
                f"Invalid value: '{kind}'. Supported values are: 'text', 'json_object', and "
                "'json_schema'.",
                param="text.format.type",
                code="invalid_value",
            )
        if kind == "json_schema":
            for name in ("name", "schema"):
                if fmt.get(name) is None:
                    raise OpenAIError(
                        f"Missing required parameter: 'text.format.{name}'.",
                        param=f"text.format.{name}",
                        code="missing_required_parameter",
                    )

    def check_items(self, items: list[Any], previous: str | None) -> None:
        calls: set[str] = set()
        if previous is not None:
            calls = {
                item["call_id"]
                for item in self.stored[previous]["output"]
                if item.get("type") == "function_call"
            }
        for index, item in enumerate(items):
            where = f"input[{index}]"
            if not isinstance(item, dict):
                raise OpenAIError(f"Invalid type for '{where}': expected an object.", param=where)
            kind = item.get("type", "message" if "role" in item else None)
            if kind not in ITEM_TYPES:
                raise OpenAIError(
                    f"Invalid value: '{kind}'. Supported values are: {_listed(sorted(ITEM_TYPES))}.",
                    param=f"{where}.type",
                    code="invalid_value",
                )
            if kind == "message":
                self.check_message_item(where, item)
            elif kind == "function_call":
                for name in ("call_id", "name", "arguments"):
                    if not isinstance(item.get(name), str):
                        raise OpenAIError(
                            f"Missing required parameter: '{where}.{name}'.",
                            param=f"{where}.{name}",
                            code="missing_required_parameter",
                        )
                calls.add(item["call_id"])
            elif kind == "function_call_output":
                call_id = item.get("call_id")
                if not isinstance(call_id, str) or "output" not in item:
                    raise OpenAIError(
                        f"Missing required parameter: '{where}.call_id'.",
                        param=f"{where}.call_id",
                        code="missing_required_parameter",
                    )
                if call_id not in calls:
                    raise OpenAIError(
                        f"No tool call found for function call output with call_id {call_id}.",
                        param="input",
                    )

    def check_message_item(self, where: str, item: dict[str, Any]) -> None:
        role = item.get("role")
        if role not in ROLES:
            raise OpenAIError(
                f"Invalid value: '{role}'. Supported values are: {_listed(ROLES)}.",
                param=f"{where}.role",
                code="invalid_value",
            )
        content = item.get("content")
        if isinstance(content, str):
            return
        if not isinstance(content, list):
            raise OpenAIError(
                f"Invalid type for '{where}.content': expected one of a string or array of "
                "input content items.",
                param=f"{where}.content",
                code="invalid_type",
            )
        allowed = OUTPUT_PARTS if role == "assistant" else INPUT_PARTS
        for part_index, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in allowed:
                raise OpenAIError(
                    f"Invalid value: '{kind}'. Supported values are: {_listed(allowed)}.",
                    param=f"{where}.content[{part_index}].type",
                    code="invalid_value",
                )


class ResponsesAnswers(ResponsesRules):
    """Answers: a message, or a function call while a function tool waits for its result."""

    cached_tokens: int
    reasoning_tokens: int
    reply: str
    stream_error_after: int | None
    stream_error: dict[str, Any]

    async def responses(self, body: dict[str, Any], send: Any, scripted: Scripted | None) -> None:
        response = self.response_for(body)
        if body.get("store") is not False:
            self.stored[response["id"]] = response
        if not body.get("stream"):
            public = {k: v for k, v in response.items() if k != "_input"}
            await self.send_json(send, 200, public)
            return
        events = self.response_events(response)
        if self.stream_error_after is not None:  # OpenAI's error event, then the end
            error = {
                "type": "error",
                "code": "server_error",
                "message": self.stream_error["message"],
                "param": None,
                "sequence_number": self.stream_error_after,
            }
            events = [*events[: self.stream_error_after], b"event: error\n" + sse(error)]
        await self.send_events(send, events, scripted)

    def history(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The input items, after the previous response's input and output."""
        items: list[dict[str, Any]] = []
        previous = body.get("previous_response_id")
        if previous is not None:
            items += self.stored[previous]["_input"] + self.stored[previous]["output"]
        given = body.get("input")
        if isinstance(given, str):
            items.append({"type": "message", "role": "user", "content": given})
        elif isinstance(given, list):
            items += given
        return items

    def response_for(self, body: dict[str, Any]) -> dict[str, Any]:
        items = self.history(body)
        serial = next(_SERIALS)
        tools = body.get("tools") or []
        functions = [tool for tool in tools if tool.get("type") == "function"]
        last = items[-1] if items else {}
        output: list[dict[str, Any]] = []
        reasoning = self.reasoning_tokens if body["model"].startswith(REASONING_MODELS) else 0
        if reasoning:
            output.append({"id": f"rs_fake{serial:04d}", "type": "reasoning", "summary": []})
        if any(tool.get("type", "").startswith(WEB_SEARCH) for tool in tools):
            output.append(
                {
                    "id": f"ws_fake{serial:04d}",
                    "type": "web_search_call",
                    "status": "completed",
                    "action": {"type": "search", "query": "fake search"},
                }
            )
        produced = reasoning
        status, incomplete = "completed", None
        limit = body.get("max_output_tokens")
        if (
            functions
            and body.get("tool_choice") != "none"
            and last.get("type") != "function_call_output"
        ):
            arguments = '{"city": "Paris"}'
            output.append(
                {
                    "id": f"fc_fake{serial:04d}",
                    "type": "function_call",
                    "status": "completed",
                    "call_id": f"call_fake{serial:04d}abcdefghij",
                    "name": functions[0]["name"],
                    "arguments": arguments,
                }
            )
            produced += count_tokens(arguments) + 2
        else:
            if last.get("type") == "function_call_output":
                text = f"The tool said: {_text_of(last.get('output'))}"
            elif ((body.get("text") or {}).get("format") or {}).get("type") in (
                "json_object",
                "json_schema",
            ):
                text = '{"answer": "hello", "ok": true}'
            else:
                text = self.reply
            words = text.split(" ")
            if limit is not None and reasoning + len(words) > limit:
                words = words[: max(limit - reasoning, 0)]
                status, incomplete = "incomplete", {"reason": "max_output_tokens"}
            text = " ".join(words)
            produced += count_tokens(text)
            output.append(
                {
                    "id": f"msg_fake{serial:04d}",
                    "type": "message",
                    "status": status,
                    "role": "assistant",
                    "content": [
                        {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
                    ],
                }
            )
        given = sum(
            count_tokens(_text_of(item.get("content")) or str(item.get("output") or "")) + 3
            for item in items
        )
        if isinstance(body.get("instructions"), str):
            given += count_tokens(body["instructions"]) + 3
        cached = min(self.cached_tokens, given)
        tier = body.get("service_tier")
        return {
            "id": f"resp_fake{serial:04d}",
            "object": "response",
            "created_at": int(time.time()),
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": incomplete,
            "instructions": body.get("instructions"),
            "max_output_tokens": limit,
            "max_tool_calls": body.get("max_tool_calls"),
            "model": body["model"],
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": (body.get("reasoning") or {}).get("effort"), "summary": None},
            "service_tier": tier if tier in ("flex", "priority") else "default",
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": tools,
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation", "disabled"),
            "usage": {
                "input_tokens": given,
                "input_tokens_details": {"cached_tokens": cached},
                "output_tokens": produced,
                "output_tokens_details": {"reasoning_tokens": reasoning},
                "total_tokens": given + produced,
            },
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
            "_input": items,
        }

    def response_events(self, response: dict[str, Any]) -> list[bytes]:
        """The documented events, in order, numbered from 0."""
        events: list[dict[str, Any]] = []
        public = {k: v for k, v in response.items() if k != "_input"}
        opening = {**public, "status": "in_progress", "output": [], "usage": None}
        opening["incomplete_details"] = None
        events.append({"type": "response.created", "response": opening})
        events.append({"type": "response.in_progress", "response": opening})
        for index, item in enumerate(public["output"]):
            events += self.item_events(index, item)
        final = "response.incomplete" if public["status"] == "incomplete" else "response.completed"
        events.append({"type": final, "response": public})
        frames = []
        for number, event in enumerate(events):
            event["sequence_number"] = number
            frames.append(b"event: " + event["type"].encode() + b"\n" + sse(event))
        return frames

    def item_events(self, index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
        at = {"output_index": index, "item_id": item["id"]}
        kind = item["type"]
        if kind == "message":
            part = item["content"][0]
            text = part["text"]
            opened = {**item, "status": "in_progress", "content": []}
            empty = {**part, "text": ""}
            events: list[dict[str, Any]] = [
                {"type": "response.output_item.added", "output_index": index, "item": opened},
                {"type": "response.content_part.added", **at, "content_index": 0, "part": empty},
            ]
            words = text.split(" ") if text else []
            for position, word in enumerate(words):
                events.append(
                    {
                        "type": "response.output_text.delta",
                        **at,
                        "content_index": 0,
                        "delta": word if position == 0 else " " + word,
                        "logprobs": [],
                    }
                )
            events += [
                {
                    "type": "response.output_text.done",
                    **at,
                    "content_index": 0,
                    "text": text,
                    "logprobs": [],
                },
                {"type": "response.content_part.done", **at, "content_index": 0, "part": part},
            ]
        elif kind == "function_call":
            arguments = item["arguments"]
            opened = {**item, "status": "in_progress", "arguments": ""}
            events = [{"type": "response.output_item.added", "output_index": index, "item": opened}]
            for start in range(0, len(arguments), 5):
                events.append(
                    {
                        "type": "response.function_call_arguments.delta",
                        **at,
                        "delta": arguments[start : start + 5],
                    }
                )
            events.append(
                {"type": "response.function_call_arguments.done", **at, "arguments": arguments}
            )
        elif kind == "web_search_call":
            events = [
                {"type": "response.output_item.added", "output_index": index, "item": item},
                {"type": "response.web_search_call.in_progress", **at},
                {"type": "response.web_search_call.searching", **at},
                {"type": "response.web_search_call.completed", **at},
            ]
        else:
            events = [{"type": "response.output_item.added", "output_index": index, "item": item}]
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
        return events


_SERIALS = itertools.count(1)
