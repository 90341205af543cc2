"""Streaming time-to-first-byte: what the gateway adds before the client's first SSE byte.

The shared harness's mock sends a whole stream in one write, so it cannot show TTFB. Here
bench/ttfb-mock.sh (nginx + Lua) answers with its first event at once and the rest 20 ms
apart; this client sends the same streaming request N times to that upstream directly and
through the gateway, alternating, on a new connection each time, and times the first `data:`
byte of each.

    python bench/ttfb.py DIRECT_BASE GATEWAY_BASE KEY MODEL [N]
"""

import asyncio
import statistics
import sys
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


async def measure(direct: str, gateway: str, key: str, model: str, count: int) -> None:
    for _ in range(20):  # warm-up: connection pools, caches
        await first_byte(direct, "", "mock-gpt")
        await first_byte(gateway, key, model)
    direct_ms, gateway_ms = [], []
    for _ in range(count):
        direct_ms.append(await first_byte(direct, "", "mock-gpt"))
        gateway_ms.append(await first_byte(gateway, key, model))

    def pct(values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=100)[int(q) - 1]

    print(f"streaming TTFB over {count} requests each (ms)")
    print("| target | p50 | p90 | p99 |")
    print("|---|---|---|---|")
    for name, values in (("direct", direct_ms), ("gateway", gateway_ms)):
        print(f"| {name} | {pct(values, 50):.3f} | {pct(values, 90):.3f} | {pct(values, 99):.3f} |")
    added = [g - d for g, d in zip(gateway_ms, direct_ms, strict=True)]
    cells = " | ".join(f"{pct(added, q):.3f}" for q in (50, 90, 99))
    print(f"| added by the gateway | {cells} |")


if __name__ == "__main__":
    direct, gateway, key, model = sys.argv[1:5]
    asyncio.run(
        measure(direct, gateway, key, model, int(sys.argv[5]) if len(sys.argv) > 5 else 500)
    )
