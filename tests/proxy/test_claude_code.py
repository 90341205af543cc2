"""Claude Code, the real `claude` CLI (pinned from npm in tests/agents/, `make agent-deps`), run
as `claude -p` through the gateway: to a Claude card by its catalog title (a model id Claude
Code does not recognise, so it sends its beta fields), to a GPT and to a Gemini card, against
the strict fakes; and its gateway model discovery reading GET /v1/models."""

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.catalog.specs import card_spec_from_entry
from proxy.services import card_create
from tests.conftest import REPO, LiveServer, missing_part
from tests.fakes.anthropic_rules import THINKING_TEXT, signature_for
from tests.fakes.server import FakeServer

pytestmark = pytest.mark.slow

CLAUDE_BIN = REPO / "tests" / "agents" / "node_modules" / ".bin" / "claude"
# Cards of our own, titled as a catalog titles its models (the shipped catalog changes).
CLAUDE, GPT, GEMINI = "Claude Agent Opus", "Agent GPT", "Agent Gemini"
CARDS = [
    (CLAUDE, "anthropic", "claude-opus-5-5"),
    (GPT, "openai", "gpt-5"),
    (GEMINI, "gemini", "gemini-2.5-flash"),
]


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    if CLAUDE_BIN.exists():
        return CLAUDE_BIN
    missing_part(
        f"needs Claude Code at {CLAUDE_BIN} (`make agent-deps` runs npm ci in tests/agents/)"
    )


@pytest.fixture
def agent_cards(translating_gateway: LiveServer) -> None:
    for title, provider, upstream_id in CARDS:
        entry = {
            "title": title,
            "provider": provider,
            "upstream_id": upstream_id,
            "context_length": 200000,
            "max_output_tokens": 64000,
            "pricing": {"input": "1.00", "output": "2.00"},
            "capabilities": ["tools", "vision", "reasoning"],
        }
        card_create(spec=card_spec_from_entry(entry, "test"))
    translating_gateway.wait_for_routing(
        lambda routing: all(
            routing.resolve(title) is not None and routing.upstreams_for(routing.resolve(title))
            for title, _, _ in CARDS
        )
    )


def claude_p(
    claude_bin: Path, gateway: LiveServer, api_key: str, model: str, home: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    """`claude -p` with a fresh HOME, the gateway's root as its base URL and our key."""
    work = home / "project"
    work.mkdir(parents=True, exist_ok=True)
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": gateway.url,
        **({"ANTHROPIC_API_KEY": api_key} if api_key else {}),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        **env,
    }
    return subprocess.run(
        [str(claude_bin), "-p", "Say hello", "--model", model, "--output-format", "json"],
        cwd=work,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def result_of(run: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert run.returncode == 0, (run.returncode, run.stdout[-2000:], run.stderr[-2000:])
    result = json.loads(run.stdout)
    assert result["is_error"] is False, result
    return dict(result)


def messages_calls(fake: FakeServer) -> list[Any]:
    return [r for r in fake.app.received if r.method == "POST"]


def system_texts(messages: list[Any]) -> list[str]:
    """The texts of Claude Code's role "system" messages, in order."""
    texts = []
    for message in messages:
        if message["role"] != "system":
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        else:
            texts.append("\n\n".join(b["text"] for b in content or () if b["type"] == "text"))
    return texts


def test_claude_p_to_a_claude_card_by_title_passes_its_beta_fields_untouched(
    claude_bin: Path,
    translating_gateway: LiveServer,
    api_key: str,
    fake_anthropic: FakeServer,
    agent_cards: None,
    tmp_path: Path,
) -> None:
    run = claude_p(claude_bin, translating_gateway, api_key, CLAUDE, tmp_path)
    result = result_of(run)
    first, second = messages_calls(fake_anthropic)
    body = first.body
    # A model id Claude Code does not recognise: it sent the Messages API's newer fields, and the
    # strict fake (which refuses what Anthropic refuses) took them as they were.
    assert body["model"] == "claude-opus-5-5"
    assert [message["role"] for message in body["messages"]] == ["user", "system"]
    assert system_texts(body["messages"])[0].startswith("Available agent types")
    assert body["output_config"] == {"effort": "high"}
    assert body["context_management"] == {
        "edits": [{"type": "clear_thinking_20251015", "keep": "all"}]
    }
    assert body["thinking"] == {"type": "adaptive"}
    assert body["stream"] is True
    betas = first.headers["anthropic-beta"].split(",")
    assert {"context-management-2025-06-27", "effort-2025-11-24"} <= set(betas)
    assert "mid-conversation-system-2026-04-07" in betas
    assert first.headers["x-api-key"] == "sk-ant-fake"  # ours, never the client's
    # The fake thought, then called Claude Code's first tool with made-up input; Claude Code
    # sent back the signed thinking block and the tool's error, and the fake's answer to that
    # is the result.
    answered = second.body["messages"]
    thinking = answered[-2]["content"][0]
    assert (thinking["type"], thinking["signature"]) == ("thinking", signature_for(THINKING_TEXT))
    assert answered[-1]["content"][0]["type"] == "tool_result"
    assert result["result"].startswith("The tool said: <tool_use_error>InputValidationError")


def test_claude_p_to_claude_sonnet_4_5_by_its_catalog_title(
    claude_bin: Path,
    translating_gateway: LiveServer,
    api_key: str,
    fake_anthropic: FakeServer,
    tmp_path: Path,
) -> None:
    """The issue's own command: Sonnet 4.5 refuses what Claude Code sends an unknown id (role
    "system" messages, adaptive thinking, effort), so the gateway fits the body to it."""
    run = claude_p(claude_bin, translating_gateway, api_key, "Claude Sonnet 4.5", tmp_path)
    result = result_of(run)
    first, second = messages_calls(fake_anthropic)
    body = first.body
    assert body["model"] == "claude-sonnet-4-5"
    assert [message["role"] for message in body["messages"]] == ["user", "user"]
    reminder = body["messages"][1]["content"]  # the system message's content, as it was
    assert (reminder if isinstance(reminder, str) else reminder[0]["text"]).startswith(
        "Available agent types"
    )
    assert body["thinking"]["type"] == "enabled"
    assert 1024 <= body["thinking"]["budget_tokens"] < body["max_tokens"]
    assert "effort" not in body.get("output_config", {})
    assert body["context_management"] == {
        "edits": [{"type": "clear_thinking_20251015", "keep": "all"}]
    }
    # The thinking block came back signed on the second turn, and the answer reached the user.
    thinking = second.body["messages"][-2]["content"][0]
    assert (thinking["type"], thinking["signature"]) == ("thinking", signature_for(THINKING_TEXT))
    assert result["result"].startswith("The tool said: <tool_use_error>InputValidationError")


def test_claude_p_to_a_gpt_card(
    claude_bin: Path,
    translating_gateway: LiveServer,
    api_key: str,
    fake_openai: FakeServer,
    agent_cards: None,
    tmp_path: Path,
) -> None:
    run = claude_p(claude_bin, translating_gateway, api_key, GPT, tmp_path)
    result = result_of(run)
    first, second = messages_calls(fake_openai)
    body = first.body
    assert body["model"] == "gpt-5"
    # Claude Code's system prompt first, its role "system" message where it put it (last).
    messages = body["messages"]
    assert [message["role"] for message in messages] == ["system", "user", "system"]
    assert "software engineering" in messages[0]["content"]
    assert messages[2]["content"].startswith("Available agent types")
    assert body["reasoning_effort"] == "high"  # output_config.effort
    assert {tool["function"]["name"] for tool in body["tools"]} >= {"Bash", "Read", "Agent"}
    # The fake called a tool with made-up input; Claude Code's error result came back to it.
    call = json.loads(second.body["messages"][-2]["tool_calls"][0]["function"]["arguments"])
    assert call == {"city": "Paris"}
    assert second.body["messages"][-1]["role"] == "tool"
    assert result["result"].startswith("The tool said: Error: <tool_use_error>InputValidation")


def test_claude_p_to_a_gemini_card(
    claude_bin: Path,
    translating_gateway: LiveServer,
    api_key: str,
    fake_gemini: FakeServer,
    agent_cards: None,
    tmp_path: Path,
) -> None:
    run = claude_p(claude_bin, translating_gateway, api_key, GEMINI, tmp_path)
    result = result_of(run)
    first, second = messages_calls(fake_gemini)
    assert first.path.startswith("/v1beta/models/gemini-2.5-flash:streamGenerateContent")
    # Gemini's one systemInstruction: the system prompt, then the role "system" message.
    parts = [part["text"] for part in first.body["systemInstruction"]["parts"]]
    assert "software engineering" in parts[0]
    assert parts[-1].startswith("Available agent types")
    assert [turn["role"] for turn in first.body["contents"]] == ["user"]
    assert first.body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 24576}
    response = second.body["contents"][-1]["parts"][0]["functionResponse"]
    assert response["name"] == "Agent"
    assert result["result"].startswith("The tool said: Error: <tool_use_error>InputValidation")


def test_claude_code_gateway_model_discovery_lists_the_catalog_titles(
    claude_bin: Path,
    translating_gateway: LiveServer,
    api_key: str,
    fake_anthropic: FakeServer,
    agent_cards: None,
    tmp_path: Path,
) -> None:
    fake_anthropic.app.calls_tools = False
    # Claude Code discovers the models beside its first request and stores them when they come;
    # a paced answer keeps `claude -p` running until they have (so its state file has them).
    fake_anthropic.app.chunk_delay = 0.2
    run = claude_p(
        claude_bin,
        translating_gateway,
        "",
        CLAUDE,
        tmp_path,
        ANTHROPIC_AUTH_TOKEN=api_key,
        CLAUDE_CODE_USE_GATEWAY="1",
        CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY="1",
    )
    result = result_of(run)
    assert result["result"] == "Hello from the fake Claude, happy to help."
    # Claude Code keeps the gateway's models as its model picker's extra options, taking the
    # ids that name a Claude model.
    state = json.loads((tmp_path / ".claude.json").read_text())
    listed = httpx.get(
        f"{translating_gateway.url}/v1/models",
        params={"limit": 1000},
        headers={"anthropic-version": "2023-06-01"},
    ).json()["data"]
    expected = [
        {"value": model["id"], "label": model["display_name"], "description": ""}
        for model in listed
        if re.match("(claude|anthropic)", model["id"], re.IGNORECASE)
    ]
    assert CLAUDE in [option["value"] for option in expected]
    assert state["additionalModelOptionsCache"] == expected
