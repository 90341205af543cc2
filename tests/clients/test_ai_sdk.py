"""The Vercel AI SDK (`ai` with @ai-sdk/openai, @ai-sdk/openai-compatible and @ai-sdk/anthropic,
pinned in tests/clients/package.json) against the gateway: one Node process runs every case
(tests/clients/ai_sdk.mjs), each case is checked here. `createOpenAI(...)(model)`, the provider's
default (the same model as `.responses(model)`), speaks /v1/responses, to every provider; with
it the SDK also runs the tool itself and sends its result back ("roundtrip")."""

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.clients.conftest import CLAUDE, GEMINI, GPT, MISTRAL, PROVIDERS, REPLIES, Stack
from tests.conftest import missing_part

# django_db: so the test database is set up; the data itself is the module fixture's (conftest).
pytestmark = [pytest.mark.slow, pytest.mark.django_db]

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "ai_sdk.mjs"
CHAT_TITLES = [CLAUDE, GPT, GEMINI, MISTRAL]
MODES = ("plain", "stream", "tool")
# Modes that send the first answer's items back: by reference, the provider's default (OpenAI
# stores every response), and whole with its option store: false.
SECOND_STEP = ("roundtrip", "followup")
CASES = [
    {
        "id": f"{provider}-{title.split()[-1]}-{mode}",
        "provider": provider,
        "model": title,
        "mode": mode,
    }
    for provider, titles, modes in (
        ("openai", CHAT_TITLES, MODES),
        ("openai-compatible", CHAT_TITLES, MODES),
        ("openai-responses", CHAT_TITLES, (*MODES, *SECOND_STEP)),  # /v1/responses
        ("anthropic", [CLAUDE, GPT, GEMINI], MODES),  # /v1/messages
    )
    for title in titles
    for mode in modes
] + [
    {
        "id": f"openai-responses-{title.split()[-1]}-{mode}-store-false",
        "provider": "openai-responses",
        "model": title,
        "mode": mode,
        "store": False,
    }
    for title in CHAT_TITLES
    for mode in SECOND_STEP
]
# With its default store: true the provider sends an earlier answer's items back as
# item_reference (the "followup" and "roundtrip" modes): the gateway resolves them from the
# responses it stored. The "-store-false" cases send the items themselves.
RESPONSES_CALLS = {"plain": 1, "stream": 1, "tool": 1, "roundtrip": 2, "followup": 2}
TOOL_CALLS = [["get_weather", {"city": "Paris"}]]
# The anthropic provider given the server's root posts to /messages: the gateway says where.
ROOTED = {
    "id": "anthropic-root",
    "provider": "anthropic",
    "model": CLAUDE,
    "mode": "plain",
    "root": True,
}


def _missing() -> str | None:
    if shutil.which("node") is None:
        return "needs Node.js (node) for the AI SDK"
    if not (HERE / "node_modules" / "ai").is_dir():
        return "needs the AI SDK installed: `make client-deps` (npm ci in tests/clients)"
    return None


@pytest.fixture(scope="module")
def results(stack: Stack) -> dict[str, Any]:
    missing = _missing()
    if missing:
        missing_part(missing)
    request = {"url": stack.url, "apiKey": stack.api_key, "cases": [*CASES, ROOTED]}
    done = subprocess.run(
        ["node", str(SCRIPT)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=HERE,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize(
    "case",
    [pytest.param(case, id=case["id"]) for case in CASES],
)
def test_ai_sdk(results: dict[str, Any], case: dict[str, Any]) -> None:
    expected: Any = {
        "plain": REPLIES[case["model"]],
        "stream": REPLIES[case["model"]],
        "tool": TOOL_CALLS,
        "roundtrip": {"calls": TOOL_CALLS, "text": "The tool said: Sunny in Paris"},
        "followup": [REPLIES[case["model"]]] * 2,
    }[case["mode"]]
    assert results[case["id"]].get("ok") == expected, results[case["id"]]
    if case["provider"] == "openai-responses":
        usage = results[case["id"]]["usage"]
        assert usage["inputTokens"] > 0
        if case["mode"] in ("plain", "stream"):  # every fake counts a word a token
            assert usage["outputTokens"] == len(REPLIES[case["model"]].split())
        else:
            assert usage["outputTokens"] > 0
        assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]


@pytest.mark.parametrize(
    "title",
    [pytest.param(title, id=title.split()[-1]) for title in CHAT_TITLES],
)
def test_ai_sdk_responses_reach_each_provider_and_the_tool_result_with_them(
    stack: Stack, results: dict[str, Any], title: str
) -> None:
    """Only the two round trips (by reference and store: false) send a tool result, each in the
    provider's own format. GPT's Responses calls are all passed on to /v1/responses."""
    assert results  # every case has run
    assert stack.tool_results(title) == ["Sunny in Paris"] * 2
    if PROVIDERS[title] == "openai":
        paths = [received.path for received in stack.fake(title).received]
        calls = [
            RESPONSES_CALLS[case["mode"]]
            for case in CASES
            if case["provider"] == "openai-responses" and case["model"] == title
        ]
        assert paths.count("/v1/responses") == sum(calls)


def test_ai_sdk_given_the_server_root_is_told_the_right_url(results: dict[str, Any]) -> None:
    assert "use POST /v1/messages" in results["anthropic-root"]["error"]
