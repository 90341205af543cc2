"""Streaming time-to-first-byte: what the gateway adds before the client's first SSE byte.

The shared harness's mock sends a whole stream in one write, so it cannot show TTFB. Here a
small asyncio upstream answers with its first event at once and the rest 20 ms apart; the
client sends the same streaming request N times to the upstream directly and through the
gateway, alternating, and times the first `data:` byte of each.

    python bench/ttfb.py mock PORT
    python bench/ttfb.py measure DIRECT_BASE GATEWAY_BASE KEY MODEL [N]
"""

import asyncio
import statistics
import sys
import time
from urllib.parse import urlsplit

EVENTS = 10
GAP_SECONDS = 0.02


def _chunk(content: str) -> bytes:
    return (
        b'data: {"id":"chatcmpl-ttfb","object":"chat.completion.chunk","created":1700000000,'
        b'"model":"mock-gpt","choices":[{"index":0,"delta":{"content":"'
        + content.encode()
        + b'"},"finish_reason":null}]}\n\n'
    )


USAGE = (
    b'data: {"id":"chatcmpl-ttfb","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"mock-gpt","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":10,'
    b'"total_tokens":15}}\n\ndata: [DONE]\n\n'
)


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
            )
            for index in range(EVENTS):
                data = _chunk(f"t{index}")
                writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                await writer.drain()
                await asyncio.sleep(GAP_SECONDS)
            writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(USAGE), USAGE))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def mock(port: int) -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


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
    if sys.argv[1] == "mock":
        asyncio.run(mock(int(sys.argv[2])))
    else:
        direct, gateway, key, model = sys.argv[2:6]
        count = int(sys.argv[6]) if len(sys.argv) > 6 else 500
        asyncio.run(measure(direct, gateway, key, model, count))
