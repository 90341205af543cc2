"""Anthropic's Messages API as the fake enforces it: the fields, blocks and headers it accepts,
and the errors Anthropic returns for the rest (tests/fakes/anthropic_api.py answers)."""

import hashlib
import re
from typing import Any

import orjson

from tests.fakes.anthropic_schema import body_problem

# Blocks that belong to one side of the conversation only.
ASSISTANT_ONLY = frozenset({"tool_use", "server_tool_use", "thinking", "redacted_thinking"})
USER_ONLY = frozenset({"tool_result"})
IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
# What each model takes: "legacy" (no structured outputs, temperature with top_p), "new"
# (structured outputs, thinking with a budget), "adaptive" (also thinking.type adaptive and
# effort max), "adaptive-only" (adaptive thinking and no budget, effort xhigh), "no-thinking".
MODELS = {
    "claude-opus-4-6": "adaptive",
    "claude-sonnet-4-6": "adaptive",
    # Opus 4.7 and the Claude 5 family think adaptively only (Anthropic's model docs).
    "claude-opus-4-7": "adaptive-only",
    "claude-opus-5-5": "adaptive-only",
    "claude-sonnet-5-5": "adaptive-only",
    "claude-haiku-5-5": "adaptive-only",
    "claude-opus-4-5": "new",
    "claude-opus-4-1": "new",
    "claude-opus-4-0": "legacy",
    "claude-sonnet-4-5": "new",
    "claude-sonnet-4-0": "legacy",
    "claude-haiku-4-5": "new",
    "claude-3-5-haiku-latest": "no-thinking",
}
# output_config.effort: Opus 4.5, the 4.6 models and later; Sonnet and Haiku 4.5 refuse it.
EFFORT_MODELS = frozenset(
    {"claude-opus-4-5", "claude-opus-4-6", "claude-sonnet-4-6"}
    | {model for model, kind in MODELS.items() if kind == "adaptive-only"}
)
# Role "system" messages inside `messages`: Opus 4.8 and the Claude 5 family only.
SYSTEM_MESSAGE_MODELS = frozenset({"claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5"})
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

    def check_headers(self, headers: dict[str, str], *, has_body: bool = True) -> None:
        key = headers.get("x-api-key")
        if key is None:
            raise AnthropicError("x-api-key header is required", 401, "authentication_error")
        if key != self.api_key:
            raise AnthropicError("invalid x-api-key", 401, "authentication_error")
        if not headers.get("anthropic-version"):
            raise AnthropicError("anthropic-version: header is required")
        if has_body and not headers.get("content-type", "").startswith("application/json"):
            raise AnthropicError("Content-Type must be application/json")

    def check_request(self, body: Any, schema: type, *, count_only: bool) -> None:
        if not isinstance(body, dict):
            raise AnthropicError("Request body must be a JSON object")
        problem = body_problem(body, schema, stream=not count_only)
        if problem is not None:
            raise AnthropicError(problem)
        if body["model"] not in MODELS:
            raise AnthropicError(f"model: {body['model']}", 404, "not_found_error")
        if not count_only and body["max_tokens"] < 0:
            raise AnthropicError("max_tokens: Input should be greater than or equal to 0")
        self.check_system(body.get("system"))
        self.check_messages(body["messages"], body)
        self.check_sampling(body)
        self.check_tools(body)
        self.check_thinking(body, count_only)
        self.check_output_config(body)

    @staticmethod
    def check_output_config(body: dict[str, Any]) -> None:
        model = body["model"]
        config = body.get("output_config") or {}
        if config.get("format") is not None and MODELS[model] in ("legacy", "no-thinking"):
            raise AnthropicError(
                f"output_config.format: structured outputs are not supported by {model}"
            )
        efforts = [config.get("effort")] + [
            (message.get("output_config") or {}).get("effort")
            for message in body["messages"]
            if message["role"] == "system"
        ]
        if any(efforts) and model not in EFFORT_MODELS:
            raise AnthropicError("This model does not support the effort parameter.")
        if "max" in efforts and MODELS[model] not in ("adaptive", "adaptive-only"):
            raise AnthropicError("effort 'max' is not supported by this model.")
        if "xhigh" in efforts and MODELS[model] != "adaptive-only":
            raise AnthropicError("effort 'xhigh' is not supported by this model.")

    def check_system(self, system: Any) -> None:
        for index, block in enumerate(system if isinstance(system, list) else ()):
            self.check_block(f"system.{index}", block)

    def check_messages(self, messages: list[dict[str, Any]], body: dict[str, Any]) -> None:
        if not messages:
            raise AnthropicError("messages: at least one message is required")
        previous_tool_uses: set[str] = set()
        for index, message in enumerate(messages):
            where = f"messages.{index}"
            role, content = message["role"], message.get("content")
            if role == "system":
                if body["model"] not in SYSTEM_MESSAGE_MODELS:
                    raise AnthropicError(f"{where}.role: Input should be 'user' or 'assistant'")
                # Instructions at their place in the conversation (no turn of their own).
                if content is None and not message.get("output_config"):
                    raise AnthropicError(
                        f"{where}: a system message needs content or output_config fields"
                    )
                for block_index, block in enumerate(content if isinstance(content, list) else ()):
                    self.check_block(f"{where}.content.{block_index}", block)
                continue
            if isinstance(content, str):
                if previous_tool_uses:
                    self.missing_results(index, previous_tool_uses)
                previous_tool_uses = set()
                continue
            misplaced = USER_ONLY if role == "assistant" else ASSISTANT_ONLY
            for block_index, block in enumerate(content):
                if block["type"] in misplaced:
                    raise AnthropicError(
                        f"{where}.content.{block_index}: `{block['type']}` blocks are not "
                        f"allowed in `{role}` messages"
                    )
                self.check_block(f"{where}.content.{block_index}", block)
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
        thinking = (body.get("thinking") or {}).get("type") in ("enabled", "adaptive")
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

    def check_block(self, where: str, block: dict[str, Any]) -> None:
        """What the schema cannot say about a (schema-checked) content block."""
        kind = block["type"]
        if kind == "text" and not block["text"]:
            raise AnthropicError("messages: text content blocks must be non-empty")
        if kind == "image":
            self.check_image(where, block["source"])
        elif kind == "tool_result":
            inner = block.get("content", "")
            for inner_index, part in enumerate(inner if isinstance(inner, list) else ()):
                self.check_block(f"{where}.content.{inner_index}", part)

    @staticmethod
    def check_image(where: str, source: Any) -> None:
        kind = source.get("type") if isinstance(source, dict) else None
        if kind == "base64":
            if source["media_type"] not in IMAGE_TYPES:
                raise AnthropicError(
                    f"{where}.image.source.base64.media_type: Input should be 'image/jpeg', "
                    "'image/png', 'image/gif' or 'image/webp'"
                )
        elif kind == "url" and not str(source["url"]).startswith("http"):
            raise AnthropicError(f"{where}.image.source.url: Input should be a valid URL")

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
            kind = tool.get("type", "custom")
            if kind not in ("custom", None):
                # A server tool: its fields are the schema's; max_uses is above 0 (or null).
                uses = tool.get("max_uses")
                if isinstance(uses, int) and uses <= 0:
                    raise AnthropicError(
                        f"tools.{index}.{kind}.max_uses: Input should be greater than 0"
                    )
                continue
            if not TOOL_NAME.fullmatch(tool["name"]):
                raise AnthropicError(
                    f"tools.{index}.custom.name: String should match pattern "
                    "'^[a-zA-Z0-9_-]{1,128}$'"
                )
            if tool["input_schema"].get("type") != "object":
                raise AnthropicError(f"tools.{index}.custom.input_schema.type: Field required")
        choice = body.get("tool_choice")
        if choice is None:
            return
        if not tools:
            raise AnthropicError("tool_choice may only be specified while providing tools.")
        if choice["type"] == "tool" and choice["name"] not in {t.get("name") for t in tools}:
            raise AnthropicError(f"tool_choice.tool.name: no tool named {choice.get('name')}")

    @staticmethod
    def check_thinking(body: dict[str, Any], count_only: bool) -> None:
        thinking = body.get("thinking")
        if thinking is None or thinking["type"] == "disabled":
            return
        model = body["model"]
        if MODELS[model] == "no-thinking":
            raise AnthropicError(f"thinking: not supported by model {model}")
        if thinking["type"] == "enabled" and MODELS[model] == "adaptive-only":
            raise AnthropicError(
                "thinking.type.enabled is not supported for this model. Use "
                "thinking.type.adaptive and output_config.effort to control thinking behavior."
            )
        if thinking["type"] == "adaptive" and MODELS[model] not in ("adaptive", "adaptive-only"):
            raise AnthropicError(
                f"thinking.type: 'adaptive' is not supported by {model}; use 'enabled' with "
                "budget_tokens."
            )
        if thinking["type"] == "enabled":
            budget = thinking["budget_tokens"]
            if budget < 1024:
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
