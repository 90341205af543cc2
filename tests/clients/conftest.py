"""One live gateway per test module, its own cards and credentials in front of every provider's
strict fake, for the client libraries people point at TokenByte (README.md, "Client libraries").

Module scope keeps the matrix cheap: the fakes, the gateway and its data are made once per
module (database access unblocked for the module's length) and the database is flushed after,
as every transactional test's is.
"""

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command

from accounts.models import User
from keys.services import key_mint
from keys.validation import KeySpec
from proxy.catalog.specs import CardSpec
from proxy.services import card_create, credential_upsert
from tests.conftest import LiveServer
from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.gemini_api import FakeGemini
from tests.fakes.mistral_api import FakeMistral
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.server import FakeAPI, FakeServer

# Titles of this module's own cards (never the shipped catalog's) and the upstream ids behind.
CLAUDE, GPT, GEMINI, MISTRAL = "Client Claude", "Client GPT", "Client Gemini", "Client Mistral"
UPSTREAM_IDS = {
    CLAUDE: "claude-sonnet-4-5",
    GPT: "gpt-4o",
    GEMINI: "gemini-2.5-flash",
    MISTRAL: "mistral-large-latest",
}
PROVIDERS = {CLAUDE: "anthropic", GPT: "openai", GEMINI: "gemini", MISTRAL: "mistral"}
REPLIES = {
    CLAUDE: "Hello from the fake Claude, happy to help.",
    GPT: "Hello from the fake model, happy to help.",
    GEMINI: "Hello from the fake Gemini, happy to help.",
    MISTRAL: "Bonjour from the fake Mistral model.",
}


@dataclass
class Stack:
    url: str  # the server's root; the OpenAI-shaped API is at url + "/v1"
    api_key: str
    fakes: dict[str, FakeServer]  # by provider
    server: LiveServer

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    def fake(self, title: str) -> Any:
        return self.fakes[PROVIDERS[title]].app

    def last_body(self, title: str) -> Any:
        return self.fake(title).received[-1].body

    def tool_results(self, title: str) -> list[str]:
        """The function results the card's fake was sent, oldest first, read from each
        provider's own wire format (a Responses function_call_output, a chat `tool` message, a
        Messages tool_result block, a Gemini functionResponse)."""
        return [text for received in self.fake(title).received for text in _results(received.body)]


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def _results(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return []
    if isinstance(body.get("input"), list):  # Responses
        items = body["input"]
        return [_text(i["output"]) for i in items if i.get("type") == "function_call_output"]
    if isinstance(body.get("contents"), list):  # Gemini
        parts = [p for turn in body["contents"] for p in turn.get("parts") or ()]
        answers = [p["functionResponse"]["response"] for p in parts if "functionResponse" in p]
        return [str(answer.get("output", answer)) for answer in answers]
    found = []
    for message in body.get("messages") or ():
        content = message.get("content")
        if message.get("role") == "tool":  # Chat Completions (OpenAI, Mistral)
            found.append(_text(content))
        elif isinstance(content, list):  # Messages
            found += [
                _text(b.get("content", "")) for b in content if b.get("type") == "tool_result"
            ]
    return found


def _card(title: str) -> CardSpec:
    return CardSpec(
        title=title,
        provider=PROVIDERS[title],
        upstream_id=UPSTREAM_IDS[title],
        type="chat",
        context_length=128_000,
        max_output_tokens=8192,
        input_price=Decimal(1),
        output_price=Decimal(2),
        cache_read_price=Decimal("0.1"),
        cache_write_price=Decimal("1.25"),
        supports_tools=True,
        supports_json=True,
        supports_vision=True,
    )


@pytest.fixture(scope="module")
def stack(django_db_setup: None, django_db_blocker: Any) -> Iterator[Stack]:
    apps: dict[str, FakeAPI] = {
        "anthropic": FakeAnthropic(),
        "openai": FakeOpenAI(),
        "gemini": FakeGemini(),
        "mistral": FakeMistral(),
    }
    with django_db_blocker.unblock(), ExitStack() as cleanup:
        cleanup.callback(call_command, "flush", interactive=False, verbosity=0)
        fakes = {name: cleanup.enter_context(FakeServer(app)) for name, app in apps.items()}
        bases = {
            "anthropic": fakes["anthropic"].url,  # Anthropic's base excludes /v1, as its SDK's
            "openai": f"{fakes['openai'].url}/v1",
            "gemini": fakes["gemini"].url,
            "mistral": fakes["mistral"].url,
        }
        for provider, app in apps.items():
            credential_upsert(
                provider=provider, api_key=app.api_key, base_url=bases[provider], name="fake"
            )
        for title in PROVIDERS:
            card_create(spec=_card(title))
        owner = User.objects.create_user("client-matrix@example.com")
        secret = key_mint(owner=owner, spec=KeySpec(name="client matrix")).secret
        server = cleanup.enter_context(LiveServer())
        server.wait_for_routing(
            lambda routing: (
                {card.title for card in routing.cards} >= set(PROVIDERS)
                and all(routing.upstreams_for(card) for card in routing.cards)
            )
        )
        yield Stack(url=server.url, api_key=secret, fakes=fakes, server=server)
