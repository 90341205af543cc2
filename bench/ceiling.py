"""Cost of a request's worst case (proxy/gateway/pipeline/ceiling.py), per request.

    .venv/bin/python bench/ceiling.py

Pure CPU: worst_case plus its cost and the output limit that fits a ceiling, as
Pipeline.reserve computes them before every upstream call, on a short chat body, a 12-turn
tool-using one, one with image parts, a Claude Code-sized Messages body (system prompt and
tool schemas, ~60 KB, naming "file" throughout) and that body with Anthropic's web search.
"""

import os
import timeit
from collections.abc import Callable
from decimal import Decimal

import django
import orjson

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenbyte.settings_test")
django.setup()

from billing.pricing import Prices  # noqa: E402
from proxy.gateway.pipeline import ceiling  # noqa: E402
from proxy.gateway.pipeline.ceiling import OutputLimit, worst_case  # noqa: E402
from proxy.gateway.routing import Card  # noqa: E402

SONNET = Card(
    id=1,
    title="Claude Sonnet 4.5",
    provider="anthropic",
    upstream_id="claude-sonnet-4-5",
    type="chat",
    context_length=200_000,
    max_output_tokens=64_000,
    prices=Prices(
        Decimal(3),
        Decimal(15),
        Decimal("0.30"),
        Decimal("3.75"),
        Decimal(6),
        server_tools=(("web_fetch", Decimal(0)), ("web_search", Decimal("0.01"))),
    ),
    supports_tools=True,
    supports_vision=True,
    supports_json=True,
    supports_reasoning=True,
    first_byte_timeout=None,
    credential_ids=frozenset(),
    names=("claude-sonnet-4-5",),
    created=0,
)
SHORT = {"model": "GPT-4o", "messages": [{"role": "user", "content": "Say hello"}]}
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CONVERSATION = {
    "model": "x",
    "messages": [
        {"role": "system", "content": "You are helpful. " * 20},
        *[
            {"role": role, "content": "Some earlier turn of the conversation. " * 10}
            for role in ("user", "assistant") * 5
        ],
        {"role": "user", "content": "Weather in Paris?"},
    ],
    "tools": [TOOL] * 3,
    "max_tokens": 500,
}
IMAGES = {
    "model": "GPT-4o",
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare these"},
                *[
                    {"type": "image_url", "image_url": {"url": f"https://example.com/{i}.png"}}
                    for i in range(4)
                ],
            ],
        }
    ],
}
AGENT_TOOL = {
    "name": "Read",
    "description": "Reads a file from the local filesystem. The file_path must be absolute. " * 12,
    "input_schema": {
        "type": "object",
        "properties": {"file_path": {"type": "string", "description": "The file to read"}},
        "required": ["file_path"],
    },
}
AGENT = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 32000,
    "system": [{"type": "text", "text": "You are an agent editing files in a repository. " * 400}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Fix the failing test, please."}]}
    ],
    "tools": [AGENT_TOOL] * 16,
    "stream": True,
}


def per_call(fn: Callable[[], object], number: int) -> float:
    """µs per call, the best of 7 runs."""
    return min(timeit.repeat(fn, number=number, repeat=7)) / number * 1e6


def reserve_like(raw: bytes, output: OutputLimit, **extra: object) -> Callable[[], object]:
    cap = Decimal("0.05")

    def run() -> object:
        worst = worst_case(SONNET, raw, output, **extra)  # type: ignore[arg-type]
        return worst.cost() <= cap or worst.fitting(cap)

    return run


def main() -> None:
    cases: dict[str, tuple[bytes, dict[str, object]]] = {
        "chat, short": (orjson.dumps(SHORT), {}),
        "chat, 12 turns + 3 tools": (orjson.dumps(CONVERSATION), {}),
        "chat, 5 content parts": (orjson.dumps(IMAGES), {}),
        "messages, agent (60 KB)": (orjson.dumps(AGENT), {}),
    }
    server_tool = getattr(ceiling, "ServerTool", None)  # absent before server tools counted
    if server_tool is not None:
        search = {**AGENT, "tools": [*[AGENT_TOOL] * 16, {"type": "web_search_20250305"}]}
        tools = [server_tool("web_search", 8, lambda uses: None)]
        cases["messages, agent + web search"] = (orjson.dumps(search), {"tools": tools})
    print("worst case + fit, µs per request (best of 7 x 5,000)")
    for name, (raw, extra) in cases.items():
        run = reserve_like(raw, OutputLimit(None), **extra)
        print(f"  {name:30} {len(raw):7} B {per_call(run, 5000):7.2f}")


if __name__ == "__main__":
    main()
