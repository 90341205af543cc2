"""The upstream-client conformance suite: what any client the gateway uses must do on the wire.

Every test takes `client`, a factory of transports behind the gateway's seam
(`send(UpstreamRequest) -> httpx.Response`, httpx's errors, `aclose()`), built from
`TransportOptions`. `make test` runs the suite against the client the gateway ships with;
`CONFORMANCE_CLIENTS=all` (or a comma-separated list) runs it against the candidates measured
in bench/upstream_clients.py too, through their adapters in bench/candidates/.
Tests marked `internal` read our transport's own state and run for ours alone.
"""

import os
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
import uvloop

from proxy.upstream.request import UpstreamRequest
from proxy.upstream.transport import TransportOptions, UpstreamTransport

SHIPPED = "ours"
CANDIDATES = ("ours", "aiohttp", "curl_cffi", "pyreqwest")
TIMEOUTS = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}


class Transport(Protocol):
    async def send(self, request: UpstreamRequest) -> httpx.Response: ...

    async def aclose(self) -> None: ...


Factory = Callable[..., Transport]


def clients_under_test() -> list[str]:
    chosen = os.environ.get("CONFORMANCE_CLIENTS", SHIPPED)
    return list(CANDIDATES) if chosen == "all" else [name.strip() for name in chosen.split(",")]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "client" in metafunc.fixturenames:
        metafunc.parametrize("client", clients_under_test(), indirect=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "internal: reads our own transport's state")


@pytest.fixture
def client(request: pytest.FixtureRequest) -> Factory:
    name: str = request.param
    if request.node.get_closest_marker("internal") and name != "ours":
        pytest.skip(f"{name} keeps this internal: the case reads our transport's own state")
    if name == "ours":
        return lambda **options: UpstreamTransport(TransportOptions(**options))
    bench = str(Path(__file__).resolve().parents[3] / "bench")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    from candidates import make_transport  # bench/ is not a package

    return lambda **options: make_transport(name, TransportOptions(**options))


def run(main: Coroutine[Any, Any, None]) -> None:
    """On uvloop, as the gateway runs."""
    uvloop.run(main)


@dataclass
class Answer:
    status: int
    headers: httpx.Headers
    body: bytes
    chunks: list[bytes]


def request(
    url: str,
    *,
    tenant: bytes = b"A",
    body: bytes = b"{}",
    method: str = "POST",
    **timeouts: float,
) -> UpstreamRequest:
    built = UpstreamRequest(
        method,
        httpx.URL(url),
        [
            (b"authorization", b"Bearer sk-tenant-" + tenant),
            (b"content-type", b"application/json"),
            (b"accept-encoding", b"identity"),
            (b"x-tenant", tenant),
        ],
        body,
    )
    built.extensions["timeout"] = {**TIMEOUTS, **timeouts}
    return built


async def call(transport: Transport, req: UpstreamRequest) -> Answer:
    response = await transport.send(req)
    try:
        chunks = [chunk async for chunk in response.stream]
    finally:
        await response.aclose()
    return Answer(response.status_code, response.headers, b"".join(chunks), chunks)
