"""instructor and llama-index against the gateway. They do not install beside the project's
openai==3.57.0 (instructor: jiter<0.15; llama-index-llms-openai: openai<3), so they live in
.venv-legacy-clients/ (tests/clients/legacy/requirements.txt, `make client-deps`): one process
of that venv's python runs every case (tests/clients/legacy_clients.py), each is checked here;
the tests that look at what the fake upstream received run their one case alone.
"""

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.clients.conftest import CLAUDE, GEMINI, GPT, MISTRAL, REPLIES, UPSTREAM_IDS, Stack
from tests.conftest import missing_part

# django_db: so the test database is set up; the data itself is the module fixture's (conftest).
pytestmark = [pytest.mark.slow, pytest.mark.django_db]

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "legacy_clients.py"
PYTHON = HERE.parents[1] / ".venv-legacy-clients" / "bin" / "python"
CHAT_TITLES = [CLAUDE, GPT, GEMINI, MISTRAL]
MESSAGES_TITLES = [CLAUDE, GPT, GEMINI]
CITY = {"city": "Paris"}  # every fake calls the first tool offered with these arguments
JSON_ANSWER = {"answer": "hello", "ok": True}  # every fake's answer to a JSON response format
TOOL_CALLS = [["get_weather", CITY]]
TOOL_OUTPUT = "Sunny in Paris"  # legacy_clients.get_weather, run by llama-index itself

# library: (titles, cases)
MATRIX = {
    "instructor-openai": (CHAT_TITLES, ["plain", "stream", "json"]),
    "instructor-anthropic": (MESSAGES_TITLES, ["plain", "stream"]),
    "llama-index-openai-like": (CHAT_TITLES, ["plain", "stream", "tool", "agent"]),
    # Refuses names missing from its own Claude table (the test below): Claude, by upstream id.
    "llama-index-anthropic": ([CLAUDE], ["plain", "stream", "tool", "agent"]),
}
BY_UPSTREAM_ID = {"llama-index-anthropic"}
CASES = [
    {
        "id": f"{library}-{title.split()[-1]}-{case}",
        "library": library,
        "title": title,
        "model": UPSTREAM_IDS[title] if library in BY_UPSTREAM_ID else title,
        "case": case,
    }
    for library, (titles, cases) in MATRIX.items()
    for title in titles
    for case in cases
]


def _expected(case: dict[str, Any]) -> Any:
    if case["library"].startswith("instructor"):
        return JSON_ANSWER if case["case"] == "json" else CITY
    return {
        "plain": REPLIES[case["title"]],
        "stream": REPLIES[case["title"]],
        "tool": TOOL_CALLS,
        "agent": TOOL_OUTPUT,
    }[case["case"]]


@pytest.fixture(scope="module")
def python() -> Path:
    if PYTHON.exists():
        return PYTHON
    missing_part(f"needs {PYTHON.parent.parent.name}/ (`make client-deps` builds it)")


def _drive(python: Path, *args: str, stdin: str | None = None) -> Any:
    done = subprocess.run(
        [str(python), str(SCRIPT), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=HERE,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def _one(python: Path, stack: Stack, library: str, model: str, case: str) -> Any:
    return _drive(python, stack.url, stack.api_key, library, model, case)


@pytest.fixture(scope="module")
def results(python: Path, stack: Stack) -> dict[str, Any]:
    request = {"url": stack.url, "key": stack.api_key, "cases": CASES}
    return dict(_drive(python, "--batch", stdin=json.dumps(request)))


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_legacy_client(results: dict[str, Any], case: dict[str, Any]) -> None:
    result = results[case["id"]]
    if case["case"] == "stream" and case["library"].startswith("instructor"):
        # Partials as they arrived, each a prefix of the whole; the last is the whole.
        assert "ok" in result, result
        partials = result["ok"]
        assert partials[-1] == CITY
        assert all(CITY["city"].startswith(p["city"] or "") for p in partials), partials
        # Claude and GPT stream a call's arguments in pieces; Gemini and Mistral send them whole.
        assert len(partials) > 1 or case["title"] in (GEMINI, MISTRAL), partials
        return
    assert result == {"ok": _expected(case)}


def test_instructor_forces_its_tool_and_claude_gets_it_translated(
    python: Path, stack: Stack
) -> None:
    assert _one(python, stack, "instructor-openai", CLAUDE, "plain") == {"ok": CITY}
    body = stack.last_body(CLAUDE)
    assert body["model"] == UPSTREAM_IDS[CLAUDE]
    assert body["tool_choice"] == {"type": "tool", "name": "City"}
    (tool,) = body["tools"]
    assert tool["name"] == "City"
    assert tool["input_schema"]["properties"] == {"city": {"title": "City", "type": "string"}}


def test_instructor_anthropic_forces_its_tool_and_gpt_gets_it_translated(
    python: Path, stack: Stack
) -> None:
    assert _one(python, stack, "instructor-anthropic", GPT, "plain") == {"ok": CITY}
    body = stack.last_body(GPT)
    assert body["model"] == UPSTREAM_IDS[GPT]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "City"}}
    (tool,) = body["tools"]
    assert tool["function"]["name"] == "City"
    assert tool["function"]["parameters"]["required"] == ["city"]


def test_instructor_json_schema_reaches_gemini_as_a_response_schema(
    python: Path, stack: Stack
) -> None:
    assert _one(python, stack, "instructor-openai", GEMINI, "json") == {"ok": JSON_ANSWER}
    config = stack.last_body(GEMINI)["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    assert set(schema["properties"]) == {"answer", "ok"}


def test_llama_index_openai_like_offers_the_tool_to_mistral(python: Path, stack: Stack) -> None:
    assert _one(python, stack, "llama-index-openai-like", MISTRAL, "tool") == {"ok": TOOL_CALLS}
    body = stack.last_body(MISTRAL)
    assert body["model"] == UPSTREAM_IDS[MISTRAL]
    (tool,) = body["tools"]
    assert tool["function"]["name"] == "get_weather"
    assert tool["function"]["parameters"]["required"] == ["city"]


@pytest.mark.parametrize(
    ("library", "title", "error"),
    [
        ("llama-index-openai", GPT, f"ValueError: Unknown model '{GPT}'"),
        ("llama-index-anthropic", CLAUDE, f"ValueError: Unknown model: {CLAUDE}."),
        ("llama-index-anthropic", GPT, f"ValueError: Unknown model: {GPT}."),
    ],
    ids=["openai-GPT", "anthropic-Claude", "anthropic-GPT"],
)
def test_llama_index_refuses_a_catalog_title(
    python: Path, stack: Stack, library: str, title: str, error: str
) -> None:
    """README.md: llama-index's `OpenAI` and `Anthropic` refuse names missing from their own
    model tables, before sending anything: the upstream hears nothing."""
    before = len(stack.fake(title).received)
    result = _one(python, stack, library, title, "plain")
    assert result["error"].startswith(error), result
    assert len(stack.fake(title).received) == before
