"""Streaming time-to-first-byte: what the gateway adds before the client's first SSE byte.

The shared harness's mock sends a whole stream in one write, so it cannot show TTFB. Here
bench/ttfb-mock.sh (nginx + Lua) answers with its first event at once and the rest 20 ms
apart; this client sends the same streaming request N times to that upstream directly and
through the gateway, alternating, on a new connection each time, and times the first `data:`
byte of each. With --relay, an nginx relay on the gateway's CPU (bench/relay-nginx.sh) is timed
the same way: the share of the added TTFB that any second process on the path pays. With
--baseline, a second gateway (another checkout, bench/run.sh's TB_BASELINE) is timed too.

    python bench/ttfb.py DIRECT_BASE GATEWAY_BASE KEY MODEL [--count N] [--relay RELAY_BASE]
        [--baseline GATEWAY_BASE]
"""

import argparse
import asyncio
import statistics
import time
from urllib.parse import urlsplit


async def first_byte(url: str, key: str, model: str) -> float:
    parts = urlsplit(url + "/chat/completions")
    body = (
        b'{"model":"' + model.encode() + b'","stream":true,'
        b'"messages":[{"role":"user","content":"Say hello."}]}'
    )
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    request = (
        f"POST {parts.path} HTTP/1.1\r\nhost: {parts.netloc}\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {key}\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body
    started = time.perf_counter()
    writer.write(request)
    await writer.drain()
    received = b""
    while b"data:" not in received:
        chunk = await reader.read(65536)
        if not chunk:
            raise RuntimeError(f"{url} closed before any event: {received[:300]!r}")
        received += chunk
    took = time.perf_counter() - started
    while await reader.read(65536):  # drain the rest, so each request ends before the next
        pass
    writer.close()
    return took * 1000


async def measure(targets: dict[str, tuple[str, str, str]], count: int) -> None:
    for _ in range(20):  # warm-up: connection pools, caches
        for base, key, model in targets.values():
            await first_byte(base, key, model)
    timings: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(count):  # interleaved, so drift hits every target alike
        for name, (base, key, model) in targets.items():
            timings[name].append(await first_byte(base, key, model))

    def pct(values: list[float], q: int) -> float:
        return statistics.quantiles(values, n=100)[q - 1]

    def row(name: str, values: list[float]) -> str:
        return f"| {name} | " + " | ".join(f"{pct(values, q):.3f}" for q in (50, 90, 99)) + " |"

    print(f"streaming TTFB over {count} requests each (ms; 'added' is paired with the direct call)")
    print("| target | p50 | p90 | p99 |")
    print("|---|---|---|---|")
    for name, values in timings.items():
        print(row(name, values))
    for name, values in timings.items():
        if name != "direct":
            added = [t - d for t, d in zip(values, timings["direct"], strict=True)]
            print(row(f"added by the {name}", added))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("direct")
    parser.add_argument("gateway")
    parser.add_argument("key")
    parser.add_argument("model")
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--relay", help="base URL of bench/relay-nginx.sh")
    parser.add_argument("--baseline", help="base URL of another gateway with the same key")
    args = parser.parse_args()
    targets = {"direct": (args.direct, "", "mock-gpt")}
    if args.relay:
        targets["nginx relay"] = (args.relay, "", "mock-gpt")
    targets["gateway"] = (args.gateway, args.key, args.model)
    if args.baseline:
        targets["baseline gateway"] = (args.baseline, args.key, args.model)
    asyncio.run(measure(targets, args.count))
