"""Which HTTP client the gateway talks to upstreams with: requests per second of one process.

Against the shared harness's nginx mock (start it first:
`../shared/bench/mock/mock.sh 9100 0 /tmp/mock`), one request at a time and 16 at once:

    taskset -c 1 .venv/bin/python bench/upstream_clients.py [URL]

- httpx.AsyncClient: httpx's own connection pool (httpcore)
- httpx-aiohttp transport: httpx's Request/Response over aiohttp, called directly
- httpx over aiohttp, lean: the same, with the per-call conversions made cheap (the gateway's
  transport until 2026-11-27)
- TokenByte's transport: our lean requests over our own HTTP/1.1 connections, httpx's
  responses (proxy/upstream_http.py)
- aiohttp: aiohttp's ClientSession alone, the floor
"""

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
import uvloop
from aiohttp_transport import LeanAiohttpTransport
from httpx_aiohttp import AiohttpTransport

from proxy.upstream_http import UpstreamRequest, UpstreamTransport

URL = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:9100/v1/chat/completions"
BODY = b'{"model":"mock-gpt","messages":[{"role":"user","content":"Say hello."}]}'
HEADERS = [(b"content-type", b"application/json"), (b"authorization", b"Bearer x")]
TIMEOUT = {"connect": 10.0, "read": 60.0, "write": 10.0, "pool": 10.0}
SEQUENTIAL, CONCURRENT, PER_WORKER = 3000, 16, 300


async def rate(call: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    for _ in range(200):
        await call()
    started = time.perf_counter()
    for _ in range(SEQUENTIAL):
        await call()
    one = SEQUENTIAL / (time.perf_counter() - started)

    async def worker() -> None:
        for _ in range(PER_WORKER):
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENT)))
    many = CONCURRENT * PER_WORKER / (time.perf_counter() - started)
    return one, many


def over(transport: httpx.AsyncBaseTransport) -> Callable[[], Awaitable[None]]:
    url = httpx.URL(URL)

    async def call() -> None:
        request = httpx.Request("POST", url, headers=HEADERS, content=BODY)
        request.extensions["timeout"] = TIMEOUT
        response = await transport.handle_async_request(request)
        async for _ in response.stream:  # type: ignore[union-attr]
            pass
        await response.aclose()

    return call


async def main() -> None:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=1000)
    results = {}
    async with httpx.AsyncClient(limits=limits) as client:

        async def httpx_call() -> None:
            (await client.post(URL, content=BODY, headers=HEADERS)).read()

        results["httpx.AsyncClient"] = await rate(httpx_call)
    for name, transport in (
        ("httpx-aiohttp transport", AiohttpTransport(limits=limits)),
        ("httpx over aiohttp, lean", LeanAiohttpTransport(limits=limits)),
    ):
        results[name] = await rate(over(transport))
        await transport.aclose()
    ours = UpstreamTransport()
    url = httpx.URL(URL)

    async def ours_call() -> None:
        request = UpstreamRequest("POST", url, HEADERS, BODY)
        request.extensions["timeout"] = TIMEOUT
        response = await ours.send(request)
        async for _ in response.stream:  # type: ignore[union-attr]
            pass
        await response.aclose()

    results["TokenByte's transport"] = await rate(ours_call)
    await ours.aclose()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def aiohttp_call() -> None:
            async with session.post(URL, data=BODY, headers={"authorization": "Bearer x"}) as r:
                await r.read()

        results["aiohttp"] = await rate(aiohttp_call)
    print("| client | req/s, 1 at a time | req/s, 16 at once |")
    print("|---|---|---|")
    for name, (one, many) in results.items():
        print(f"| {name} | {one:,.0f} | {many:,.0f} |")


if __name__ == "__main__":
    uvloop.run(main())
