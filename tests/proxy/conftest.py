"""Gateway fixtures: strict provider fakes on loopback, credentials pointing at them, clients."""

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import openai
import pytest

from accounts.models import User
from billing.events import UsageEvent
from keys.services import MintedKey, key_mint
from keys.validation import KeySpec
from proxy.models import ModelCard, UpstreamCredential
from proxy.services import credential_upsert
from tests.conftest import LiveServer
from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.gemini_api import FakeGemini
from tests.fakes.mistral_api import FakeMistral
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.server import FakeServer


@pytest.fixture
def fake_openai() -> Iterator[FakeServer]:
    with FakeServer(FakeOpenAI()) as server:
        yield server


@pytest.fixture
def fake_mistral() -> Iterator[FakeServer]:
    with FakeServer(FakeMistral()) as server:
        yield server


@pytest.fixture
def fake_anthropic() -> Iterator[FakeServer]:
    with FakeServer(FakeAnthropic()) as server:
        yield server


@pytest.fixture
def fake_gemini() -> Iterator[FakeServer]:
    with FakeServer(FakeGemini()) as server:
        yield server


@pytest.fixture
def openai_upstream(catalog: None, fake_openai: FakeServer) -> UpstreamCredential:
    credential, _ = credential_upsert(
        provider="openai", api_key="sk-fake-openai", base_url=f"{fake_openai.url}/v1", name="fake"
    )
    return credential


@pytest.fixture
def mistral_upstream(catalog: None, fake_mistral: FakeServer) -> UpstreamCredential:
    credential, _ = credential_upsert(
        provider="mistral", api_key="fake-mistral-key", base_url=fake_mistral.url, name="fake"
    )
    return credential


@pytest.fixture
def anthropic_upstream(catalog: None, fake_anthropic: FakeServer) -> UpstreamCredential:
    # Anthropic's base URL excludes /v1, as in its SDK.
    credential, _ = credential_upsert(
        provider="anthropic", api_key="sk-ant-fake", base_url=fake_anthropic.url, name="fake"
    )
    return credential


@pytest.fixture
def gemini_upstream(catalog: None, fake_gemini: FakeServer) -> UpstreamCredential:
    credential, _ = credential_upsert(
        provider="gemini", api_key="fake-gemini-key", base_url=fake_gemini.url, name="fake"
    )
    return credential


@pytest.fixture
def gateway(
    live_gateway: LiveServer,
    openai_upstream: UpstreamCredential,
    mistral_upstream: UpstreamCredential,
) -> LiveServer:
    """The live gateway, its routing table showing both fake upstreams."""
    live_gateway.wait_for_routing(
        lambda routing: (
            {"openai", "mistral"}
            <= {u.provider for card in routing.cards for u in routing.upstreams_for(card)}
        )
    )
    return live_gateway


@pytest.fixture
def key_owner(transactional_db: None) -> User:
    return User.objects.create_user("gateway-user@example.com")


@pytest.fixture
def minted(key_owner: User) -> MintedKey:
    return key_mint(owner=key_owner, spec=KeySpec(name="gateway tests"))


@pytest.fixture
def api_key(minted: MintedKey) -> str:
    return minted.secret


@pytest.fixture
def translating_gateway(
    gateway: LiveServer,
    anthropic_upstream: UpstreamCredential,
    gemini_upstream: UpstreamCredential,
) -> LiveServer:
    """The live gateway with every provider's fake: OpenAI, Mistral, Anthropic and Gemini."""
    gateway.wait_for_routing(
        lambda routing: (
            {"openai", "mistral", "anthropic", "gemini"}
            <= {u.provider for card in routing.cards for u in routing.upstreams_for(card)}
        )
    )
    return gateway


@pytest.fixture
def openai_client(gateway: LiveServer, api_key: str) -> openai.OpenAI:
    # max_retries=0: the SDK's own retries would hide the gateway's status codes.
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=api_key, max_retries=0, timeout=30)


@pytest.fixture
def chat_client(translating_gateway: LiveServer, api_key: str) -> openai.OpenAI:
    """The official openai SDK on the gateway, every provider behind it."""
    return openai.OpenAI(
        base_url=f"{translating_gateway.url}/v1", api_key=api_key, max_retries=0, timeout=30
    )


@pytest.fixture
def claude(translating_gateway: LiveServer, api_key: str) -> anthropic.Anthropic:
    """The official anthropic SDK on the gateway's /v1/messages (key in x-api-key)."""
    return anthropic.Anthropic(
        base_url=translating_gateway.url, api_key=api_key, max_retries=0, timeout=30
    )


class EventLog:
    """Usage events the gateway emits, as its metering consumers see them."""

    def __init__(self) -> None:
        self.events: list[UsageEvent] = []
        self._changed = threading.Condition()

    def __call__(self, batch: list[UsageEvent]) -> None:
        with self._changed:
            self.events.extend(batch)
            self._changed.notify_all()

    def wait_for(
        self, predicate: Callable[[UsageEvent], bool], timeout: float = 10.0
    ) -> UsageEvent:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no matching usage event among {self.events}")
                self._changed.wait(remaining)

    def for_request(self, request_id: str, timeout: float = 10.0) -> UsageEvent:
        return self.wait_for(lambda event: event.request_id == request_id, timeout)


@pytest.fixture
def usage_events(gateway: LiveServer) -> Iterator[EventLog]:
    log = EventLog()
    runtime = gateway.runtime
    assert runtime is not None
    runtime.metering.add_consumer(log)
    yield log
    runtime.metering.remove_consumer(log)


def card(title: str) -> ModelCard:
    return ModelCard.objects.get(title=title)


@contextlib.contextmanager
def local_llama(gateway: LiveServer, app: Any) -> Iterator[FakeServer]:
    """A self-hosted OpenAI-compatible server (`app`, a fake) behind the gateway, as card
    "Local Llama"."""
    from proxy.catalog.specs import card_spec_from_entry
    from proxy.services import card_create

    with FakeServer(app) as server:
        credential_upsert(
            provider="openai-compatible", api_key="local-key", base_url=f"{server.url}/v1"
        )
        entry = {
            "title": "Local Llama",
            "provider": "openai-compatible",
            "upstream_id": "llama-3.1-8b",
            "context_length": 8192,
            "max_output_tokens": 2048,
            "pricing": {"input": "0.05", "output": "0.08"},
        }
        card_create(spec=card_spec_from_entry(entry, "test"))
        gateway.wait_for_routing(
            lambda r: (
                r.resolve("Local Llama") is not None
                and bool(r.upstreams_for(r.resolve("Local Llama")))
            )
        )
        yield server
