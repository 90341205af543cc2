"""One tenant's bytes never reach another: an upstream's interim responses on a pooled connection.

The review's repro: an upstream that sends `103 Early Hints` before its answer. A client that
took the 103 for the answer gave tenant A an error, put the connection back in the pool, and
read A's real answer as the answer to the next request on it: tenant D's.
"""

import asyncio
import threading
from collections.abc import Iterator

import openai
import orjson
import pytest

from accounts.models import User
from keys.services import key_mint
from keys.validation import KeySpec
from proxy.services import credential_upsert
from tests.conftest import LiveServer
from tests.proxy.conformance.wire import Peer, RawServer

pytestmark = pytest.mark.slow

ANSWER_DELAY = 0.3  # the "generation" between the early hints and the answer


def completion(prompt: str) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-isolation",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "gpt-4o",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"reply to: {prompt}"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
        }
    )


async def early_hints_then_answer(peer: Peer) -> None:
    while True:
        seen = await peer.read_request()
        prompt = orjson.loads(seen.body)["messages"][-1]["content"]
        await peer.send(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
        await asyncio.sleep(ANSWER_DELAY)
        body = completion(prompt)
        await peer.send(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )


class ThreadedRawServer:
    """A RawServer on its own event loop in a thread, for a live gateway to call."""

    def __init__(self, server: RawServer) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="raw-upstream", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            async with self.server:
                self._ready.set()
                await self._stop.wait()

        self._loop.run_until_complete(main())

    def __enter__(self) -> RawServer:
        self._thread.start()
        assert self._ready.wait(10), "the raw upstream did not start"
        return self.server

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture
def hinting_upstream(catalog: None) -> Iterator[RawServer]:
    with ThreadedRawServer(RawServer(early_hints_then_answer)) as server:
        credential_upsert(
            provider="openai",
            api_key="sk-fake-openai",
            base_url=f"http://127.0.0.1:{server.port}/v1",
            name="hinting",
        )
        yield server


def tenant_client(gateway: LiveServer, email: str) -> openai.OpenAI:
    owner = User.objects.create_user(email)
    secret = key_mint(owner=owner, spec=KeySpec(name=email)).secret
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=secret, max_retries=0, timeout=30)


def test_early_hints_on_a_pooled_connection_never_hand_one_tenants_answer_to_another(
    live_gateway: LiveServer, hinting_upstream: RawServer, transactional_db: None
) -> None:
    live_gateway.wait_for_routing(
        lambda routing: bool(routing.upstreams_for(routing.resolve("GPT-4o")))
    )
    tenant_a = tenant_client(live_gateway, "tenant-a@example.com")
    tenant_d = tenant_client(live_gateway, "tenant-d@example.com")

    answers: dict[str, str | None] = {}
    for name, client in (("A", tenant_a), ("D", tenant_d)):
        prompt = f"tenant {name}: my private prompt"
        try:
            reply = client.chat.completions.create(
                model="GPT-4o", messages=[{"role": "user", "content": prompt}]
            )
            answers[name] = reply.choices[0].message.content
        except openai.APIStatusError as error:  # shown in the assertion: what each one got
            answers[name] = f"HTTP {error.status_code}"

    assert answers == {
        "A": "reply to: tenant A: my private prompt",
        "D": "reply to: tenant D: my private prompt",
    }
    assert len(hinting_upstream.requests) == 2, "each tenant's request reached the upstream once"
    assert hinting_upstream.connections == 1, "both over one pooled connection"
    assert not hinting_upstream.errors
