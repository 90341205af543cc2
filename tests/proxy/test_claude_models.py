"""A Messages API body fitted to the Claude model behind a card: thinking, effort and role
"system" messages rewritten only where that model would refuse them
(proxy/providers/anthropic/claude_models.py)."""

from typing import Any

import pytest

from proxy.providers.anthropic.claude_models import ClaudeModel, claude_model, fit_to_model

CLAUDE_CODE_BODY: dict[str, Any] = {
    "model": "Claude Sonnet 4.5",
    "max_tokens": 32000,
    "messages": [
        {"role": "user", "content": "Say hello"},
        {"role": "system", "content": [{"type": "text", "text": "Available agent types: …"}]},
        {"role": "system", "output_config": {"effort": "low"}},
    ],
    "thinking": {"type": "adaptive"},
    "output_config": {"effort": "high"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
}


@pytest.mark.parametrize(
    ("upstream_id", "expected"),
    [
        ("claude-3-5-haiku-latest", ClaudeModel(False, False, (), False)),
        ("claude-3-opus-20240229", ClaudeModel(False, False, (), False)),
        ("claude-3-7-sonnet-20250219", ClaudeModel(True, False, (), False)),
        ("claude-sonnet-4-0", ClaudeModel(True, False, (), False)),
        ("claude-opus-4-20250514", ClaudeModel(True, False, (), False)),
        ("claude-sonnet-4-5-20250929", ClaudeModel(True, False, (), False)),
        ("claude-haiku-4-5", ClaudeModel(True, False, (), False)),
        ("claude-opus-4-5", ClaudeModel(True, False, ("low", "medium", "high"), False)),
        ("claude-opus-4-6", ClaudeModel(True, True, ("low", "medium", "high", "max"), False)),
        ("claude-sonnet-4-6", ClaudeModel(True, True, ("low", "medium", "high", "max"), False)),
        (
            "claude-opus-4-7",
            ClaudeModel(False, True, ("low", "medium", "high", "xhigh", "max"), False),
        ),
        (
            "claude-opus-4-8",
            ClaudeModel(False, True, ("low", "medium", "high", "xhigh", "max"), True),
        ),
        (
            "claude-sonnet-5-5",
            ClaudeModel(False, True, ("low", "medium", "high", "xhigh", "max"), True),
        ),
        (
            "claude-fable-5",
            ClaudeModel(False, True, ("low", "medium", "high", "xhigh", "max"), True),
        ),
    ],
)
def test_each_claude_generation_is_read_from_its_upstream_id(
    upstream_id: str, expected: ClaudeModel
) -> None:
    assert claude_model(upstream_id) == expected


@pytest.mark.parametrize("upstream_id", ["claude-mythos-preview", "my-finetune", "gpt-5"])
def test_an_id_that_cannot_be_read_goes_on_untouched(upstream_id: str) -> None:
    assert claude_model(upstream_id) is None
    assert fit_to_model(CLAUDE_CODE_BODY, upstream_id) is CLAUDE_CODE_BODY


def test_claude_codes_body_to_sonnet_4_5_thinks_with_a_budget_and_no_system_messages() -> None:
    fitted = fit_to_model(CLAUDE_CODE_BODY, "claude-sonnet-4-5")
    assert fitted["thinking"] == {"type": "enabled", "budget_tokens": 24576}  # effort high
    assert "output_config" not in fitted  # Sonnet 4.5 takes no effort
    assert fitted["messages"] == [
        {"role": "user", "content": "Say hello"},
        {"role": "user", "content": [{"type": "text", "text": "Available agent types: …"}]},
    ]
    assert fitted["context_management"] == CLAUDE_CODE_BODY["context_management"]
    assert CLAUDE_CODE_BODY["thinking"] == {"type": "adaptive"}  # the client's body is not changed


def test_to_opus_4_5_the_effort_stays_and_sets_the_budget() -> None:
    body = {**CLAUDE_CODE_BODY, "output_config": {"effort": "low", "format": {"type": "x"}}}
    fitted = fit_to_model(body, "claude-opus-4-5")
    assert fitted["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert fitted["output_config"] == {"effort": "low", "format": {"type": "x"}}


def test_the_budget_fits_inside_max_tokens_or_thinking_is_left_off() -> None:
    small = fit_to_model({**CLAUDE_CODE_BODY, "max_tokens": 4000}, "claude-haiku-4-5")
    assert small["thinking"] == {"type": "enabled", "budget_tokens": 3999}
    tiny = fit_to_model({**CLAUDE_CODE_BODY, "max_tokens": 1000}, "claude-haiku-4-5")
    assert "thinking" not in tiny


def test_to_a_model_that_takes_all_of_it_the_body_is_unchanged() -> None:
    assert fit_to_model(CLAUDE_CODE_BODY, "claude-opus-5-5") == CLAUDE_CODE_BODY


def test_to_opus_4_6_system_messages_become_user_turns_and_xhigh_becomes_high() -> None:
    body = {**CLAUDE_CODE_BODY, "output_config": {"effort": "xhigh"}}
    fitted = fit_to_model(body, "claude-opus-4-6")
    assert fitted["thinking"] == {"type": "adaptive"}
    assert fitted["output_config"] == {"effort": "high"}
    assert [m["role"] for m in fitted["messages"]] == ["user", "user"]


@pytest.mark.parametrize(
    ("budget", "effort"), [(1024, "low"), (5000, "medium"), (16000, "high"), (60000, "xhigh")]
)
def test_a_budget_to_an_adaptive_only_model_becomes_adaptive_thinking_with_an_effort(
    budget: int, effort: str
) -> None:
    body = {
        "model": "x",
        "max_tokens": 64000,
        "messages": [{"role": "user", "content": "hi"}],
        "thinking": {"type": "enabled", "budget_tokens": budget},
    }
    fitted = fit_to_model(body, "claude-opus-4-7")
    assert fitted["thinking"] == {"type": "adaptive"}
    assert fitted["output_config"] == {"effort": effort}


def test_a_clients_own_effort_wins_over_the_budget() -> None:
    body = {
        "model": "x",
        "max_tokens": 64000,
        "messages": [{"role": "user", "content": "hi"}],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "output_config": {"effort": "max"},
    }
    assert fit_to_model(body, "claude-sonnet-5-5")["output_config"] == {"effort": "max"}


def test_a_model_that_cannot_think_gets_no_thinking_and_no_effort() -> None:
    fitted = fit_to_model(CLAUDE_CODE_BODY, "claude-3-5-haiku-latest")
    assert "thinking" not in fitted
    assert "output_config" not in fitted


def test_a_body_without_thinking_or_system_messages_is_only_copied() -> None:
    body = {"model": "x", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    assert fit_to_model(body, "claude-sonnet-4-5") == body


def test_system_messages_keep_their_text_and_lose_what_only_a_system_message_carries() -> None:
    messages = [
        {"role": "user", "content": "Find the TODOs"},
        {
            "role": "system",
            "content": [
                {"type": "text", "text": "The grep tool is available now."},
                {"type": "tool_addition", "tool": {"type": "tool_reference", "name": "grep"}},
            ],
        },
        {"role": "assistant", "content": "Looking."},
        {"role": "system", "content": "Reminder: be brief.", "clear_at": "next_user_message"},
        {"role": "user", "content": "Go on"},
        {"role": "system", "content": [{"type": "tool_removal", "name": "grep"}]},
        {"role": "system", "content": "Answer in English.", "clear_at": "next_user_message"},
    ]
    fitted = fit_to_model({"model": "x", "max_tokens": 10, "messages": messages}, "claude-opus-4-6")
    assert fitted["messages"] == [
        {"role": "user", "content": "Find the TODOs"},
        {"role": "user", "content": [{"type": "text", "text": "The grep tool is available now."}]},
        {"role": "assistant", "content": "Looking."},
        {"role": "user", "content": "Go on"},
        {"role": "user", "content": "Answer in English."},  # no user turn after it yet
    ]
