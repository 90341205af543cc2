"""What the Claude-behind-/v1/chat/completions tests share: a prompt, the fake's reply, a tool,
and a raw POST."""

from typing import Any

import httpx

from tests.conftest import LiveServer
from tests.fakes.server import FakeServer

HELLO = [{"role": "user", "content": "Say hello"}]  # 2 words + 3 = 5 prompt tokens in the fake
REPLY = "Hello from the fake Claude, happy to help."  # 8 tokens
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def post(gateway: LiveServer, api_key: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {api_key}"},
        timeout=30,
    )


def sent(fake: FakeServer) -> dict[str, Any]:
    return fake.app.received[-1].body
