"""Codex CLI, the real `codex` (pinned from npm in tests/agents/, `make agent-deps`), run as
`codex exec` through the gateway's /v1/responses (`wire_api = "responses"`, a model provider
whose base URL is the gateway's /v1 and whose key is in an environment variable), to a GPT
card, against the strict OpenAI fake; and to a Claude and a Gemini card, translated."""

import json
import os
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, LiveServer, missing_part
from tests.fakes.server import FakeServer
from tests.proxy.conftest import EventLog

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CODEX_BIN = REPO / "tests" / "agents" / "node_modules" / ".bin" / "codex"
GPT = "GPT-5"  # the catalog's card: no price for OpenAI's web search


@pytest.fixture(scope="session")
def codex_bin() -> Path:
    if CODEX_BIN.exists():
        return CODEX_BIN
    missing_part(f"needs Codex at {CODEX_BIN} (`make agent-deps` runs npm ci in tests/agents/)")


def codex_exec(
    codex_bin: Path, gateway: LiveServer, api_key: str, home: Path, model: str, *config: str
) -> subprocess.CompletedProcess[str]:
    """`codex exec` with a fresh HOME whose config.toml points a model provider at the gateway."""
    (home / ".codex").mkdir(parents=True, exist_ok=True)
    (home / ".codex" / "config.toml").write_text(
        "\n".join(
            [
                f'model = "{model}"',
                'model_provider = "tokenbyte"',
                *config,
                "",
                "[model_providers.tokenbyte]",
                'name = "TokenByte"',
                f'base_url = "{gateway.url}/v1"',
                'env_key = "TOKENBYTE_API_KEY"',
                'wire_api = "responses"',
                "",
            ]
        )
    )
    work = home / "project"
    work.mkdir(exist_ok=True)
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "TOKENBYTE_API_KEY": api_key,
        "NO_COLOR": "1",
    }
    return subprocess.run(
        [
            str(codex_bin),
            "exec",
            "--skip-git-repo-check",
            "--ephemeral",
            "--json",
            "--sandbox",
            "read-only",
            "Say hello",
        ],
        cwd=work,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def responses_calls(fake: FakeServer) -> list[Any]:
    return [r.body for r in fake.app.received if r.method == "POST" and r.path == "/v1/responses"]


def events_of(run: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert run.returncode == 0, (run.returncode, run.stdout[-3000:], run.stderr[-3000:])
    return [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]


def check_round_trip(run: subprocess.CompletedProcess[str], fake: FakeServer) -> list[Any]:
    """Codex's two turns: the fake calls Codex's first function tool, Codex sends its output
    back inline (store: false, no previous_response_id), and the fake's answer ends the run."""
    events = events_of(run)
    assert events[-1]["type"] == "turn.completed", events
    said = [e["item"]["text"] for e in events if e.get("item", {}).get("type") == "agent_message"]
    assert said, events
    assert said[-1].startswith("The tool said: "), events
    first, second = responses_calls(fake)
    for body in (first, second):
        assert body["stream"] is True
        assert body["store"] is False
        assert "previous_response_id" not in body
    kinds = [item.get("type") for item in second["input"]]
    assert kinds[-2:] == ["function_call", "function_call_output"]
    call, output = second["input"][-2:]
    assert call["call_id"] == output["call_id"]
    return [first, second]


def test_codex_exec_to_a_gpt_card_with_web_search_off(
    codex_bin: Path,
    gateway: LiveServer,
    api_key: str,
    fake_openai: FakeServer,
    usage_events: EventLog,
    tmp_path: Path,
) -> None:
    run = codex_exec(codex_bin, gateway, api_key, tmp_path, GPT, 'web_search = "disabled"')
    first, _ = check_round_trip(run, fake_openai)
    assert first["model"] == "gpt-5"  # the card's upstream id
    assert first["include"] == ["reasoning.encrypted_content"]
    assert not any(tool["type"].startswith("web_search") for tool in first["tools"])
    charged = usage_events.wait_for(lambda e: e.endpoint == "responses" and e.stream)
    assert (charged.model, charged.status, charged.error_code) == (GPT, 200, None)
    assert charged.cost > 0


def test_codex_exec_as_installed_searches_on_a_shipped_gpt_card(
    codex_bin: Path,
    gateway: LiveServer,
    api_key: str,
    fake_openai: FakeServer,
    usage_events: EventLog,
    tmp_path: Path,
) -> None:
    """Codex's default config sends web_search every turn: the shipped GPT cards price it
    (OpenAI's $10 per 1,000 calls), so it is served, held to max_tool_calls, and each search
    charged."""
    run = codex_exec(codex_bin, gateway, api_key, tmp_path, GPT)
    first, _ = check_round_trip(run, fake_openai)
    assert any(tool["type"] == "web_search" for tool in first["tools"])
    assert first["max_tool_calls"] == 8
    turn = usage_events.wait_for(lambda e: e.endpoint == "responses" and e.model == GPT)
    assert turn.usage.server_tools == {"web_search": 1}
    assert turn.cost > Decimal("0.01")


def upstream_calls(fake: FakeServer) -> list[Any]:
    return [r.body for r in fake.app.received if r.method == "POST"]


@pytest.mark.parametrize(
    ("title", "provider"), [("Claude Haiku 4.5", "anthropic"), ("Gemini 2.5 Flash", "gemini")]
)
def test_codex_exec_as_installed_to_claude_and_gemini_cards(
    title: str,
    provider: str,
    codex_bin: Path,
    translating_gateway: LiveServer,
    api_key: str,
    fake_anthropic: FakeServer,
    fake_gemini: FakeServer,
    usage_events: EventLog,
    tmp_path: Path,
) -> None:
    """Codex as installed (web_search on, reasoning asked, encrypted reasoning included) to
    other providers' cards: /v1/responses translated both ways, the tool round trip included;
    its web_search is dropped where the card has no search of its own (README's rule)."""
    run = codex_exec(codex_bin, translating_gateway, api_key, tmp_path, title)
    events = events_of(run)
    assert events[-1]["type"] == "turn.completed", events
    said = [e["item"]["text"] for e in events if e.get("item", {}).get("type") == "agent_message"]
    assert said, events
    assert said[-1].startswith("The tool said: "), events
    fake = fake_anthropic if provider == "anthropic" else fake_gemini
    first, second = upstream_calls(fake)
    if provider == "anthropic":
        assert first["model"] == "claude-haiku-4-5"
        assert first["system"]  # Codex's instructions
        assert [tool["name"] for tool in first["tools"]]
        last = second["messages"][-1]["content"][0]
        assert last["type"] == "tool_result"
    else:
        assert first["systemInstruction"]["parts"]
        declared = [d for tool in first["tools"] for d in tool.get("functionDeclarations", ())]
        assert declared
        assert "functionResponse" in second["contents"][-1]["parts"][0]
    usage_events.wait_for(lambda e: e.endpoint == "responses" and e.model == title)
    turns = [e for e in usage_events.events if e.endpoint == "responses"]
    assert [(e.model, e.status, e.stream) for e in turns] == [(title, 200, True)] * 2
    assert all(e.cost > 0 for e in turns)


def test_codex_exec_keeps_claudes_web_searches_in_the_conversation(
    codex_bin: Path,
    translating_gateway: LiveServer,
    api_key: str,
    fake_anthropic: FakeServer,
    tmp_path: Path,
) -> None:
    """Claude searches, then calls Codex's tool: Codex gets the searches as web_search_call
    items and sends them back with the tool's output on the next turn (store false), which
    the gateway takes (the searches' findings are in the answer; Claude needs no more)."""
    fake_anthropic.app.search_results = True
    run = codex_exec(codex_bin, translating_gateway, api_key, tmp_path, "Claude Haiku 4.5")
    events = events_of(run)
    assert events[-1]["type"] == "turn.completed", events
    first, second = upstream_calls(fake_anthropic)
    assert first["tools"][-1]["type"] == "web_search_20250305"
    assert second["messages"][-1]["content"][0]["type"] == "tool_result"
    searched = [
        e["item"]["query"]
        for e in events
        if e["type"] == "item.completed" and e.get("item", {}).get("type") == "web_search"
    ]
    assert searched == ["fake claude news 1", "fake claude news 2"], events
