"""What each Claude generation takes of thinking, effort and system-role messages, and a Messages
API body fitted to it (pure).

Clients write one body for every Claude: Claude Code sends `thinking: {type: "adaptive"}`,
`output_config.effort` and role "system" messages for any model id it does not recognise (a
catalog title is one), and older clients send `thinking: {type: "enabled", budget_tokens}` to
models that only think adaptively. Anthropic refuses each of these on the models that lack them,
so the gateway rewrites exactly those fields, and only for upstream ids it can read (an id it
cannot read goes on untouched and the API decides). The facts are Anthropic's model pages, as
LiteLLM's price map records them (`supports_adaptive_thinking`, `supports_legacy_thinking`,
`supports_output_config`, `supports_xhigh_reasoning_effort`, `supports_max_reasoning_effort`,
`supports_mid_conversation_system`). The rules are in README.md ("Claude models and their
thinking").
"""

import re
from dataclasses import dataclass
from typing import Any

from proxy.providers.translate import EFFORT_BUDGETS

# claude-opus-4-5, claude-sonnet-4-5-20250929, claude-fable-5 (the minor version is one or two
# digits, so a dated snapshot's date is not read as one); and the older claude-3-7-sonnet-latest.
_NEW_NAME = re.compile(r"claude-(?:opus|sonnet|haiku|fable|mythos)-(\d)(?:-(\d{1,2}))?(?:-|@|$)")
_OLD_NAME = re.compile(r"claude-(\d)(?:-(\d))?-(?:opus|sonnet|haiku)")
EFFORT_ORDER = ("low", "medium", "high", "xhigh", "max")
MIN_BUDGET = EFFORT_BUDGETS["minimal"]


@dataclass(frozen=True, slots=True)
class ClaudeModel:
    budget_thinking: bool  # thinking {type: "enabled", budget_tokens}
    adaptive_thinking: bool  # thinking {type: "adaptive"}
    efforts: tuple[str, ...]  # output_config.effort values taken; () refuses the field
    system_messages: bool  # role "system" messages inside `messages`


def claude_model(upstream_id: str) -> ClaudeModel | None:
    """What the Claude model behind this upstream id takes; None for an id we cannot read."""
    match = _NEW_NAME.match(upstream_id) or _OLD_NAME.match(upstream_id)
    if match is None:
        return None
    major, minor = int(match[1]), int(match[2] or 0)
    version = (major, minor)
    is_opus = "opus" in upstream_id
    if version < (3, 7):
        return ClaudeModel(False, False, (), False)
    if version < (4, 6):
        # Opus 4.5 was the first to take effort; Sonnet and Haiku 4.5 refuse it.
        efforts = EFFORT_ORDER[:3] if is_opus and version == (4, 5) else ()
        return ClaudeModel(True, False, efforts, False)
    if version == (4, 6):
        return ClaudeModel(True, True, ("low", "medium", "high", "max"), False)
    # Opus 4.7 and later, and the whole Claude 5 generation: adaptive thinking only.
    return ClaudeModel(False, True, EFFORT_ORDER, version >= (4, 8))


def fit_to_model(body: dict[str, Any], upstream_id: str) -> dict[str, Any]:
    """The body with the fields this Claude model would refuse rewritten (a copy if any are)."""
    model = claude_model(upstream_id)
    if model is None:
        return body
    out = dict(body)
    if not model.system_messages and isinstance(out.get("messages"), list):
        out["messages"] = _without_system_messages(out["messages"])
    config = out.get("output_config")
    effort = config.get("effort") if isinstance(config, dict) else None
    thinking = out.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "adaptive" and not model.adaptive_thinking:
        budget = _budget(effort, out.get("max_tokens"))
        if model.budget_thinking and budget is not None:
            out["thinking"] = {"type": "enabled", "budget_tokens": budget}
        else:
            del out["thinking"]  # the model decides how much to think: here, not at all
    elif kind == "enabled" and not model.budget_thinking:
        if model.adaptive_thinking:
            out["thinking"] = {"type": "adaptive"}
            if effort is None and isinstance(thinking, dict):
                effort = _effort_for(thinking.get("budget_tokens"))
        else:
            del out["thinking"]
    if effort is not None or "effort" in (config or {}):
        _set_effort(out, _supported_effort(effort, model))
    return out


def _without_system_messages(messages: list[Any]) -> list[Any]:
    """Role "system" messages as user turns of their text, at their place (Anthropic joins
    adjacent user turns). Dropped: tool addition/removal blocks, which only a system message can
    carry; a message that only changed the effort; one whose `clear_at: "next_user_message"`
    has passed (the API would no longer show it)."""
    if not any(_is_system(m) for m in messages):
        return messages
    kept = []
    for index, message in enumerate(messages):
        if not _is_system(message):
            kept.append(message)
            continue
        if message.get("clear_at") == "next_user_message" and any(
            isinstance(later, dict) and later.get("role") == "user"
            for later in messages[index + 1 :]
        ):
            continue
        content = message.get("content")
        if isinstance(content, list):
            content = [b for b in content if isinstance(b, dict) and b.get("type") == "text"]
        if content:
            kept.append({"role": "user", "content": content})
    return kept


def _is_system(message: Any) -> bool:
    return isinstance(message, dict) and message.get("role") == "system"


def _budget(effort: Any, max_tokens: Any) -> int | None:
    """The thinking budget for an effort, inside max_tokens; None when max_tokens leaves no room
    for the minimum budget."""
    if effort in EFFORT_BUDGETS:
        budget = EFFORT_BUDGETS[effort]
    elif effort == "max":
        budget = EFFORT_BUDGETS["xhigh"]  # the largest budget we name; max_tokens bounds it
    else:
        budget = EFFORT_BUDGETS["high"]  # Anthropic's default effort
    if isinstance(max_tokens, int):
        budget = min(budget, max_tokens - 1)
    return budget if budget >= MIN_BUDGET else None


def _effort_for(budget: Any) -> str | None:
    """The effort whose budget (EFFORT_BUDGETS) is the smallest at least this one."""
    if not isinstance(budget, int):
        return None
    for effort in ("low", "medium", "high"):
        if budget <= EFFORT_BUDGETS[effort]:
            return effort
    return "xhigh"


def _supported_effort(effort: Any, model: ClaudeModel) -> str | None:
    """The effort itself if the model takes it, else the highest it takes below it, else none."""
    if effort in model.efforts or effort not in EFFORT_ORDER:
        return effort if model.efforts else None
    lower = EFFORT_ORDER[: EFFORT_ORDER.index(effort)]
    return next((e for e in reversed(lower) if e in model.efforts), None)


def _set_effort(out: dict[str, Any], effort: str | None) -> None:
    config = dict(out.get("output_config") or {})
    if effort is None:
        config.pop("effort", None)
    else:
        config["effort"] = effort
    if config:
        out["output_config"] = config
    else:
        out.pop("output_config", None)
