"""The Vercel AI SDK (`ai` with @ai-sdk/openai, @ai-sdk/openai-compatible and @ai-sdk/anthropic,
pinned in tests/clients/package.json) against the gateway: one Node process runs every case
(tests/clients/ai_sdk.mjs), each case is checked here."""

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.clients.conftest import CLAUDE, GEMINI, GPT, MISTRAL, REPLIES, Stack
from tests.conftest import missing_part

# django_db: so the test database is set up; the data itself is the module fixture's (conftest).
pytestmark = [pytest.mark.slow, pytest.mark.django_db]

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "ai_sdk.mjs"
CHAT_TITLES = [CLAUDE, GPT, GEMINI, MISTRAL]
CASES = [
    {
        "id": f"{provider}-{title.split()[-1]}-{mode}",
        "provider": provider,
        "model": title,
        "mode": mode,
    }
    for provider, titles in (
        ("openai", CHAT_TITLES),
        ("openai-compatible", CHAT_TITLES),
        ("anthropic", [CLAUDE, GPT, GEMINI]),  # /v1/messages
    )
    for title in titles
    for mode in ("plain", "stream", "tool")
]
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


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_ai_sdk(results: dict[str, Any], case: dict[str, Any]) -> None:
    expected: Any = REPLIES[case["model"]]
    if case["mode"] == "tool":
        expected = [["get_weather", {"city": "Paris"}]]
    assert results[case["id"]] == {"ok": expected}


def test_ai_sdk_given_the_server_root_is_told_the_right_url(results: dict[str, Any]) -> None:
    assert "use POST /v1/messages" in results["anthropic-root"]["error"]
