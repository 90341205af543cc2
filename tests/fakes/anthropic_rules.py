"""Anthropic's Messages API as the fake enforces it: the fields, blocks and headers it accepts,
and the errors Anthropic returns for the rest (tests/fakes/anthropic_api.py answers)."""

import hashlib
import re
from typing import Any

import orjson

CREATE_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "cache_control",
        "container",
        "context_management",
        "diagnostics",
        "inference_geo",
        "mcp_servers",
        "metadata",
        "output_config",
        "service_tier",
        "speed",
        "stop_sequences",
        "stream",
        "system",
        "temperature",
        "thinking",
        "tool_choice",
        "tools",
        "top_k",
        "top_p",
        "user_profile_id",
        "workspace_id",
    }
)
COUNT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "cache_control",
        "output_config",
        "speed",
        "system",
        "thinking",
        "tool_choice",
        "tools",
        "user_profile_id",
        "workspace_id",
    }
)
BLOCK_FIELDS = {
    "text": {"type", "text", "cache_control", "citations"},
    "image": {"type", "source", "cache_control"},
    "document": {"type", "source", "cache_control", "title", "context", "citations"},
    "tool_use": {"type", "id", "name", "input", "cache_control"},
    "tool_result": {"type", "tool_use_id", "content", "is_error", "cache_control"},
    "thinking": {"type", "thinking", "signature"},
    "redacted_thinking": {"type", "data"},
}
USER_BLOCKS = {"text", "image", "document", "tool_result"}
ASSISTANT_BLOCKS = {"text", "tool_use", "thinking", "redacted_thinking"}
IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
TOOL_FIELDS = {"name", "description", "input_schema", "cache_control", "strict", "type"}
MODELS = {
    "claude-opus-5-5": "new",
    "claude-sonnet-5-5": "new",
    "claude-haiku-5-5": "new",
    "claude-opus-4-5": "new",
    "claude-opus-4-1": "new",
    "claude-opus-4-0": "legacy",
    "claude-sonnet-4-5": "new",
    "claude-sonnet-4-0": "legacy",
    "claude-haiku-4-5": "new",
    "claude-3-5-haiku-latest": "no-thinking",
}
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,128}")
THINKING_TEXT = "Let me think about this carefully first."


class AnthropicError(Exception):
    def __init__(self, message: str, status: int = 400, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.kind = status, kind

    def body(self) -> dict[str, Any]:
        return {
            "type": "error",
            "error": {"type": self.kind, "message": str(self)},
            "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
        }


def signature_for(thinking: str) -> str:
    return "sig_" + hashlib.sha256(thinking.encode()).hexdigest()


def words(text: str) -> int:
    return len(text.split())


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    pieces = []
    for block in content or ():
        if block.get("type") == "text":
            pieces.append(block["text"])
        elif block.get("type") == "tool_result":
            pieces.append(text_of(block.get("content", "")))
        elif block.get("type") == "tool_use":
            pieces.append(orjson.dumps(block.get("input")).decode())
    return " ".join(pieces)


class AnthropicRequestRules:
    """The requests Anthropic's API accepts; the fake's handler calls these before answering."""

    api_key: str  # the one key the fake accepts

    def check_headers(self, headers: dict[str, str]) -> None:
        key = headers.get("x-api-key")
        if key is None:
            raise AnthropicError("x-api-key header is required", 401, "authentication_error")
        if key != self.api_key:
            raise AnthropicError("invalid x-api-key", 401, "authentication_error")
        if not headers.get("anthropic-version"):
            raise AnthropicError("anthropic-version: header is required")
        if not headers.get("content-type", "").startswith("application/json"):
            raise AnthropicError("Content-Type must be application/json")

    def check_request(self, body: Any, fields: frozenset[str], *, count_only: bool) -> None:
        if not isinstance(body, dict):
            raise AnthropicError("Request body must be a JSON object")
        for name in body:
            if name not in fields:
                raise AnthropicError(f"{name}: Extra inputs are not permitted")
        required = ("model", "messages") if count_only else ("model", "messages", "max_tokens")
        for name in required:
            if name not in body:
                raise AnthropicError(f"{name}: Field required")
        if body["model"] not in MODELS:
            raise AnthropicError(f"model: {body['model']}", 404, "not_found_error")
        if not count_only and (not isinstance(body["max_tokens"], int) or body["max_tokens"] < 0):
            raise AnthropicError("max_tokens: Input should be a valid integer")
        self.check_system(body.get("system"))
        self.check_messages(body["messages"], body)
        self.check_sampling(body)
        self.check_tools(body)
        self.check_thinking(body, count_only)
        stops = body.get("stop_sequences")
        if stops is not None and not (
            isinstance(stops, list) and all(isinstance(s, str) for s in stops)
        ):
            raise AnthropicError("stop_sequences: Input should be a valid list of strings")
        metadata = body.get("metadata")
        if metadata is not None and (not isinstance(metadata, dict) or set(metadata) - {"user_id"}):
            raise AnthropicError("metadata: Extra inputs are not permitted")
        fmt = (body.get("output_config") or {}).get("format")
        if fmt is not None:
            if MODELS[body["model"]] != "new":
                raise AnthropicError(
                    f"output_config.format: structured outputs are not supported by {body['model']}"
                )
            if fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
                raise AnthropicError("output_config.format: Input should be a json_schema format")

    def check_system(self, system: Any) -> None:
        if system is None or isinstance(system, str):
            return
        for index, block in enumerate(system if isinstance(system, list) else [None]):
            if not isinstance(block, dict) or block.get("type") != "text":
                raise AnthropicError(f"system.{index}: Input should be a text block")
            self.check_block(f"system.{index}", block, {"text"})

    def check_messages(self, messages: Any, body: dict[str, Any]) -> None:
        if not isinstance(messages, list) or not messages:
            raise AnthropicError("messages: at least one message is required")
        previous_tool_uses: set[str] = set()
        for index, message in enumerate(messages):
            where = f"messages.{index}"
            if not isinstance(message, dict):
                raise AnthropicError(f"{where}: Input should be a valid dictionary")
            for name in message:
                if name not in ("role", "content"):
                    raise AnthropicError(f"{where}.{name}: Extra inputs are not permitted")
            role = message.get("role")
            if role not in ("user", "assistant"):
                raise AnthropicError(f"{where}.role: Input should be 'user' or 'assistant'")
            content = message.get("content")
            if isinstance(content, str):
                if previous_tool_uses:
                    self.missing_results(index, previous_tool_uses)
                previous_tool_uses = set()
                continue
            if not isinstance(content, list):
                raise AnthropicError(f"{where}.content: Input should be a valid list")
            allowed = USER_BLOCKS if role == "user" else ASSISTANT_BLOCKS
            for block_index, block in enumerate(content):
                self.check_block(f"{where}.content.{block_index}", block, allowed)
            if role == "user":
                results = [b["tool_use_id"] for b in content if b["type"] == "tool_result"]
                stray = set(results) - previous_tool_uses
                if stray:
                    raise AnthropicError(
                        f"{where}.content.0: unexpected `tool_use_id` found in `tool_result` "
                        f"blocks: {sorted(stray)[0]}. Each `tool_result` block must have a "
                        "corresponding `tool_use` block in the previous message."
                    )
                if previous_tool_uses - set(results):
                    self.missing_results(index, previous_tool_uses - set(results))
                kinds = [b["type"] for b in content]
                if results and kinds[: len(results)] != ["tool_result"] * len(results):
                    raise AnthropicError(
                        f"{where}: tool_result blocks must come first in the content, before "
                        "any other blocks."
                    )
                previous_tool_uses = set()
            else:
                if previous_tool_uses:
                    self.missing_results(index, previous_tool_uses)
                previous_tool_uses = {b["id"] for b in content if b["type"] == "tool_use"}
                self.check_signatures(where, content, body, last=index >= len(messages) - 2)

    @staticmethod
    def missing_results(index: int, ids: set[str]) -> None:
        raise AnthropicError(
            f"messages.{index}: `tool_use` ids were found without `tool_result` blocks "
            f"immediately after: {', '.join(sorted(ids))}. Each `tool_use` block must have a "
            "corresponding `tool_result` block in the next message."
        )

    def check_signatures(
        self, where: str, content: list[dict[str, Any]], body: dict[str, Any], last: bool
    ) -> None:
        for block in content:
            if block["type"] == "thinking" and block["signature"] != signature_for(
                block["thinking"]
            ):
                raise AnthropicError(f"{where}: Invalid `signature` in `thinking` block")
        thinking = (body.get("thinking") or {}).get("type") == "enabled"
        if (
            thinking
            and last
            and any(b["type"] == "tool_use" for b in content)
            and content[0]["type"] not in ("thinking", "redacted_thinking")
        ):
            raise AnthropicError(
                f"{where}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                f"`{content[0]['type']}`. When `thinking` is enabled, a final `assistant` "
                "message must start with a thinking block."
            )

    def check_block(self, where: str, block: Any, allowed: set[str]) -> None:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in allowed:
            raise AnthropicError(f"{where}.type: Input tag '{kind}' is not allowed here")
        for name in block:
            if name not in BLOCK_FIELDS[kind]:
                raise AnthropicError(f"{where}.{kind}.{name}: Extra inputs are not permitted")
        cache = block.get("cache_control")
        if cache is not None and (
            not isinstance(cache, dict)
            or cache.get("type") != "ephemeral"
            or set(cache) - {"type", "ttl"}
        ):
            raise AnthropicError(
                f"{where}.cache_control: Input should be an ephemeral cache control"
            )
        if kind == "text" and (not isinstance(block.get("text"), str) or not block["text"]):
            raise AnthropicError("messages: text content blocks must be non-empty")
        elif kind == "image":
            self.check_image(where, block.get("source"))
        elif kind == "tool_use" and not (
            isinstance(block.get("id"), str)
            and isinstance(block.get("name"), str)
            and isinstance(block.get("input"), dict)
        ):
            raise AnthropicError(f"{where}: tool_use blocks need id, name and an input object")
        elif kind == "tool_result":
            if not isinstance(block.get("tool_use_id"), str):
                raise AnthropicError(f"{where}.tool_result.tool_use_id: Field required")
            inner = block.get("content", "")
            if not isinstance(inner, str):
                for inner_index, part in enumerate(inner):
                    self.check_block(f"{where}.content.{inner_index}", part, {"text", "image"})
        elif kind == "thinking" and not (
            isinstance(block.get("thinking"), str) and isinstance(block.get("signature"), str)
        ):
            raise AnthropicError(f"{where}.thinking.signature: Field required")

    @staticmethod
    def check_image(where: str, source: Any) -> None:
        kind = source.get("type") if isinstance(source, dict) else None
        if kind == "base64":
            if set(source) != {"type", "media_type", "data"}:
                raise AnthropicError(f"{where}.image.source.base64: Field required")
            if source["media_type"] not in IMAGE_TYPES:
                raise AnthropicError(
                    f"{where}.image.source.base64.media_type: Input should be 'image/jpeg', "
                    "'image/png', 'image/gif' or 'image/webp'"
                )
        elif kind == "url":
            if set(source) != {"type", "url"} or not str(source["url"]).startswith("http"):
                raise AnthropicError(f"{where}.image.source.url: Input should be a valid URL")
        else:
            raise AnthropicError(f"{where}.image.source: Input tag '{kind}' is not allowed")

    @staticmethod
    def check_sampling(body: dict[str, Any]) -> None:
        for name, top in (("temperature", 1), ("top_p", 1)):
            value = body.get(name)
            if value is not None and not (isinstance(value, int | float) and 0 <= value <= top):
                raise AnthropicError(f"{name}: Input should be less than or equal to {top}")
        if (
            body.get("temperature") is not None
            and body.get("top_p") is not None
            and MODELS[body["model"]] != "legacy"
            and body["model"] != "claude-3-5-haiku-latest"
        ):
            raise AnthropicError(
                "`temperature` and `top_p` cannot both be specified for this model. Please use "
                "only one."
            )

    @staticmethod
    def check_tools(body: dict[str, Any]) -> None:
        tools = body.get("tools")
        for index, tool in enumerate(tools or ()):
            extra = set(tool) - TOOL_FIELDS if isinstance(tool, dict) else {"tool"}
            if extra:
                raise AnthropicError(
                    f"tools.{index}.{sorted(extra)[0]}: Extra inputs are not permitted"
                )
            if not TOOL_NAME.fullmatch(str(tool.get("name"))):
                raise AnthropicError(
                    f"tools.{index}.custom.name: String should match pattern "
                    "'^[a-zA-Z0-9_-]{1,128}$'"
                )
            schema = tool.get("input_schema")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                raise AnthropicError(f"tools.{index}.custom.input_schema.type: Field required")
        choice = body.get("tool_choice")
        if choice is None:
            return
        if not tools:
            raise AnthropicError("tool_choice may only be specified while providing tools.")
        kind = choice.get("type") if isinstance(choice, dict) else None
        allowed = {
            "auto": {"type", "disable_parallel_tool_use"},
            "any": {"type", "disable_parallel_tool_use"},
            "tool": {"type", "name", "disable_parallel_tool_use"},
            "none": {"type"},
        }
        if kind not in allowed or set(choice) - allowed[kind]:
            raise AnthropicError("tool_choice: Input tag is not one of auto, any, tool, none")
        if kind == "tool" and choice.get("name") not in {t["name"] for t in tools}:
            raise AnthropicError(f"tool_choice.tool.name: no tool named {choice.get('name')}")

    @staticmethod
    def check_thinking(body: dict[str, Any], count_only: bool) -> None:
        thinking = body.get("thinking")
        if thinking is None or thinking.get("type") == "disabled":
            return
        if MODELS[body["model"]] == "no-thinking":
            raise AnthropicError(f"thinking: not supported by model {body['model']}")
        if thinking.get("type") != "enabled" or set(thinking) - {
            "type",
            "budget_tokens",
            "display",
        }:
            raise AnthropicError("thinking: Input tag is not one of enabled, disabled, adaptive")
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            raise AnthropicError(
                "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
            )
        if not count_only and body["max_tokens"] <= budget:
            raise AnthropicError("`max_tokens` must be greater than `thinking.budget_tokens`.")
        if body.get("temperature") not in (None, 1):
            raise AnthropicError("`temperature` may only be set to 1 when thinking is enabled.")
        if body.get("top_k") is not None:
            raise AnthropicError("`top_k` is not compatible with thinking.")
        if (body.get("tool_choice") or {}).get("type") in ("any", "tool"):
            raise AnthropicError("Thinking may not be enabled when tool_choice forces tool use.")
