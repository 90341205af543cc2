"""Which HTTP client the gateway talks to upstreams with: the cost of one call, one process.

Against the shared harness's nginx mock on another CPU (start it first:
`taskset -c 0 ../shared/bench/mock/mock.sh 9100 0 /tmp/mock &`):

    taskset -c 1 .venv/bin/python bench/upstream_clients.py [URL] [--rounds 3] [--only a,b]

Each candidate behind the gateway's transport seam (bench/candidates/: an
UpstreamRequest in, an httpx.Response streamed out, as proxy/upstream/pool.py calls it) and each
library's own API alone (what the seam costs), for a JSON reply and an SSE stream, in four
modes: back to back one at a time and 16 at once (requests per second), and sparse, with a
pause between calls on each of 1 and 16 callers (latency p50/p99 per call). CPU time per call
counts every thread of the process (getrusage RUSAGE_SELF): the Rust and C clients do part of
their work outside the interpreter. The clients take turns within each round, in a rotating
order, so a noisy neighbour shows as spread: cells are medians (min-max) over the rounds.
`--threads` instead reports the threads each client leaves in a fresh process.
"""

import argparse
import asyncio
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
import httpx
import uvloop
from candidates import AUTO_HEADERS, TransportOptions, make_transport
from curl_cffi.requests import AsyncSession
from pyreqwest.client import ClientBuilder

from proxy.upstream.request import UpstreamRequest

JSON = b'{"model":"mock-gpt","messages":[{"role":"user","content":"Say hello."}]}'
SSE = b'{"model":"mock-gpt","stream":true,"messages":[{"role":"user","content":"Say hello."}]}'
HEADERS = [  # what the gateway's adapters send (proxy/providers/base.py)
    (b"authorization", b"Bearer x"),
    (b"content-type", b"application/json"),
    (b"accept", b"application/json"),
    (b"accept-encoding", b"identity"),
    (b"user-agent", b"TokenByte/0.1"),
]
TEXT_HEADERS = [(k.decode(), v.decode()) for k, v in HEADERS]
TIMEOUT = {"connect": 10.0, "read": 60.0, "write": 10.0, "pool": 10.0}
OPTIONS = TransportOptions(trust_env=False)
CALLERS = 16
# Between a caller's calls (on average): 16 callers pause longer, so that even the costliest
# client stays well under saturation (~800 calls/s); sparse is about latency, not queueing.
PAUSES = {"sparse-1": 0.005, "sparse-16": 0.020}
CALLS = {"b2b-1": 2000, "b2b-16": 3200, "sparse-1": 300, "sparse-16": 960}  # per cell

Call = Callable[[bytes], Awaitable[None]]
Opened = tuple[Call, Callable[[], Awaitable[None]]]  # one call, and closing the client


# --- the clients -----------------------------------------------------------------------------
def seam(name: str) -> Callable[[str], Opened]:
    def open_(url: str) -> Opened:
        transport, target = make_transport(name, OPTIONS), httpx.URL(url)

        async def call(body: bytes) -> None:
            request = UpstreamRequest("POST", target, HEADERS, body)
            request.extensions["timeout"] = TIMEOUT
            response = await transport.send(request)
            try:
                async for _ in response.stream:  # type: ignore[union-attr]
                    pass
            finally:
                await response.aclose()

        return call, transport.aclose

    return open_


def aiohttp_alone(url: str) -> Opened:
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=AUTO_HEADERS,
    )

    async def call(body: bytes) -> None:
        async with session.post(url, data=body, headers=TEXT_HEADERS) as response:
            async for _ in response.content.iter_any():
                pass

    return call, session.close


def curl_cffi_alone(url: str) -> Opened:
    # max_clients caps transfers in flight (default 10); discard_cookies keeps none.
    session: AsyncSession = AsyncSession(
        max_clients=64, allow_redirects=False, discard_cookies=True
    )

    async def call(body: bytes) -> None:
        response = await session.post(
            url, data=body, headers=TEXT_HEADERS, stream=True, accept_encoding=None
        )
        try:
            async for _ in response.aiter_content():
                pass
        finally:
            await response.aclose()

    return call, session.close


def pyreqwest_alone(multithreaded: bool) -> Callable[[str], Opened]:
    def open_(url: str) -> Opened:
        client = (
            ClientBuilder()
            .runtime_multithreaded(multithreaded)
            .http1_only()
            .follow_redirects(False)
            .connect_timeout(timedelta(seconds=10))
            .build()
        )

        async def call(body: bytes) -> None:
            request = client.post(url).headers(TEXT_HEADERS).body_bytes(body)
            async with request.streamed_read_buffer_limit(0).build_streamed() as response:
                while await response.body_reader.read_chunk() is not None:
                    pass

        return call, client.close

    return open_


CLIENTS: dict[str, Callable[[str], Opened]] = {
    "ours": seam("ours"),
    "aiohttp": seam("aiohttp"),
    "curl_cffi": seam("curl_cffi"),
    "pyreqwest": seam("pyreqwest"),
    "pyreqwest_mt": seam("pyreqwest_mt"),
    "pyreqwest_native": seam("pyreqwest_native"),
    "aiohttp alone": aiohttp_alone,
    "curl_cffi alone": curl_cffi_alone,
    "pyreqwest alone": pyreqwest_alone(False),
    "pyreqwest_mt alone": pyreqwest_alone(True),
}
LABELS = {
    "ours": "**ours** (proxy/upstream/transport.py)",
    "aiohttp": "aiohttp 3.14.5, seam",
    "curl_cffi": "curl-cffi 0.17.0 (libcurl 8.23), seam",
    "pyreqwest": "pyreqwest 0.15.1 (reqwest/hyper), seam",
    "pyreqwest_mt": "pyreqwest, tokio multi-thread, seam",
    "pyreqwest_native": "pyreqwest, reqwest's own read timeout, seam",
    "aiohttp alone": "aiohttp's ClientSession alone",
    "curl_cffi alone": "curl-cffi's AsyncSession alone",
    "pyreqwest alone": "pyreqwest's Client alone",
    "pyreqwest_mt alone": "pyreqwest's Client alone, multi-thread",
}


# --- the measurements ------------------------------------------------------------------------
@dataclass
class Sample:
    rate: float  # calls per second, wall clock
    cpu: float  # µs of CPU per call, all threads
    p50: float  # µs per call
    p99: float


Results = dict[tuple[str, str], list[dict[str, Sample]]]  # (client, reply) -> rounds


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(call: Call, body: bytes, callers: int, total: int, pause: float) -> Sample:
    latencies: list[float] = []
    jitter = random.Random(callers)  # the same pauses in every run

    async def caller(index: int) -> None:
        if pause:  # independent callers: staggered, and pausing 0.5-1.5x, not in lockstep
            await asyncio.sleep(pause * index / callers)
        for _ in range(total // callers):
            started = time.perf_counter()
            await call(body)
            latencies.append(time.perf_counter() - started)
            if pause:
                await asyncio.sleep(pause * jitter.uniform(0.5, 1.5))

    cpu, started = _cpu(), time.perf_counter()
    await asyncio.gather(*(caller(index) for index in range(callers)))
    wall, cpu = time.perf_counter() - started, _cpu() - cpu
    latencies.sort()
    n = len(latencies)
    return Sample(
        n / wall, cpu / n * 1e6, latencies[n // 2] * 1e6, latencies[min(n - 1, n * 99 // 100)] * 1e6
    )


async def idle_floor(pause: float) -> float:
    """CPU us that a sparse call's pause costs alone (timers, waking an idle vCPU)."""
    cpu = _cpu()
    for _ in range(100):
        await asyncio.sleep(pause)
    return (_cpu() - cpu) / 100 * 1e6


async def cells(call: Call, body: bytes) -> dict[str, Sample]:
    await measure(call, body, CALLERS, 640, 0)  # warm: 16 connections open, caches full
    return {
        "b2b-1": await measure(call, body, 1, CALLS["b2b-1"], 0),
        "b2b-16": await measure(call, body, CALLERS, CALLS["b2b-16"], 0),
        "sparse-1": await measure(call, body, 1, CALLS["sparse-1"], PAUSES["sparse-1"]),
        "sparse-16": await measure(call, body, CALLERS, CALLS["sparse-16"], PAUSES["sparse-16"]),
    }


async def run(url: str, names: list[str], rounds: int) -> Results:
    results: Results = {}
    for round_ in range(rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        load = os.getloadavg()[0]
        floors = " and ".join(
            [f"{await idle_floor(p):.0f} us for a {p * 1000:g} ms one" for p in PAUSES.values()]
        )
        started = time.perf_counter()
        for name in order:
            call, close = CLIENTS[name](url)
            try:
                for kind, body in (("JSON", JSON), ("SSE", SSE)):
                    results.setdefault((name, kind), []).append(await cells(call, body))
            finally:
                await close()
        took = time.perf_counter() - started
        print(
            f"round {round_ + 1}: {took:.0f} s; at its start, load average {load:.2f}; CPU of a "
            f"pause with nothing to do: {floors}",
            flush=True,
        )
    return results


# --- the report ------------------------------------------------------------------------------
def spread(values: list[float]) -> str:
    """The median, and the range over the rounds."""
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:,.0f}"
    return f"{median:,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def report(results: Results, names: list[str]) -> None:
    def values(name: str, kind: str, mode: str, field: str) -> list[float]:
        return [getattr(r[mode], field) for r in results[(name, kind)]]

    def ratio(name: str, kind: str, modes: tuple[str, ...]) -> str:
        """CPU per call over ours: wall-clock rates swing with the neighbours' load."""
        if "ours" not in names or name == "ours":
            return ""
        ours = [statistics.median(values("ours", kind, mode, "cpu")) for mode in modes]
        theirs = [statistics.median(values(name, kind, mode, "cpu")) for mode in modes]
        return " / ".join(f"{t / o:.2f}" for o, t in zip(ours, theirs, strict=True))

    back, sparse = ("b2b-1", "b2b-16"), ("sparse-1", "sparse-16")
    noise = []
    for kind in ("JSON", "SSE"):
        print(f"\n#### {kind} reply, back to back\n")
        print(
            "| client | req/s, 1 at a time | req/s, 16 at once | CPU us/call, 1 / 16 "
            "| ours x, 1 / 16 |"
        )
        print("|---|---|---|---|---|")
        for name in names:
            rates = [values(name, kind, mode, "rate") for mode in back]
            noise += [(max(v) - min(v)) / statistics.median(v) for v in rates]
            cpu = " / ".join(spread(values(name, kind, mode, "cpu")) for mode in back)
            print(
                f"| {LABELS[name]} | {spread(rates[0])} | {spread(rates[1])} | {cpu} "
                f"| {ratio(name, kind, back)} |"
            )
        pauses = " / ".join(f"{p * 1000:g}" for p in PAUSES.values())
        print(f"\n#### {kind} reply, sparse ({pauses} ms between a caller's calls)\n")
        print(
            "| client | 1 caller: p50 / p99 us | 16 callers: p50 / p99 us "
            "| CPU us/call, 1 / 16 | ours x, 1 / 16 |"
        )
        print("|---|---|---|---|---|")
        for name in names:
            latency = [
                f"{spread(values(name, kind, m, 'p50'))} / {spread(values(name, kind, m, 'p99'))}"
                for m in sparse
            ]
            cpu = " / ".join(spread(values(name, kind, mode, "cpu")) for mode in sparse)
            print(
                f"| {LABELS[name]} | {latency[0]} | {latency[1]} | {cpu} "
                f"| {ratio(name, kind, sparse)} |"
            )
    print(
        f"\nCells: median (min-max) over the rounds. Noise: the req/s cells' range is "
        f"{statistics.median(noise):.0%} of their median at the median, {max(noise):.0%} at "
        "worst. `ours x`: the candidate's CPU time per call over ours (medians); above 1, ours "
        "is cheaper. Sparse CPU includes the pause's own cost (the rounds' lines above)."
    )


async def threads_of(name: str, url: str) -> None:
    call, close = CLIENTS[name](url)
    await asyncio.gather(*(call(JSON) for _ in range(CALLERS)))
    print(len(os.listdir("/proc/self/task")))
    await close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", nargs="?", default="http://127.0.0.1:9100/v1/chat/completions")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", help="comma-separated client names", default=",".join(CLIENTS))
    parser.add_argument("--threads", action="store_true", help="threads per client instead")
    parser.add_argument("--threads-of", help=argparse.SUPPRESS)
    args = parser.parse_args()
    names = args.only.split(",")
    if args.threads_of:
        uvloop.run(threads_of(args.threads_of, args.url))
    elif args.threads:
        print("| client | threads after 16 calls at once |\n|---|---|")
        for name in names:
            out = subprocess.run(
                [sys.executable, __file__, args.url, "--threads-of", name],
                capture_output=True,
                text=True,
                check=True,
            )
            print(f"| {LABELS[name]} | {out.stdout.strip()} |")
    else:
        report(uvloop.run(run(args.url, names, args.rounds)), names)


if __name__ == "__main__":
    main()
