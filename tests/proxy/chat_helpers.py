"""What the tests of a provider behind /v1/chat/completions share: a prompt, a tool, a raw POST
and the body the fake received."""

from typing import Any

import httpx

from tests.conftest import LiveServer
from tests.fakes.server import FakeServer

HELLO = [{"role": "user", "content": "Say hello"}]  # 2 words (the Claude fake adds 3 tokens)
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def post(
    gateway: LiveServer, api_key: str, body: dict[str, Any], path: str = "chat/completions"
) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/{path}",
        json=body,
        headers={"authorization": f"Bearer {api_key}"},
        timeout=30,
    )


def sent(fake: FakeServer) -> dict[str, Any]:
    return fake.app.received[-1].body
