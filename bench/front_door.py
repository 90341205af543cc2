"""What the front door's bounds cost per request, in process: uvicorn's httptools protocol
against tokenbyte.front_door's, each fed the same keep-alive requests over a loopback socket pair
with a trivial ASGI app, in rounds of shuffled order (the machine is noisy), medians.

    .venv/bin/python bench/front_door.py [--requests 20000] [--rounds 7]

The request is what an SDK sends (a dozen headers); `--body` makes it a small POST. Prints
CPU microseconds per request (this process: client, protocol and app; only the protocol differs),
and uvicorn's protocol measured twice, as the noise floor.
"""

import argparse
import asyncio
import os
import random
import socket
import statistics
import time
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenbyte.settings")
os.environ.setdefault("DEBUG", "on")
django.setup()

import uvloop  # noqa: E402
from uvicorn.config import Config  # noqa: E402
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # noqa: E402
from uvicorn.server import ServerState  # noqa: E402

from tokenbyte.front_door import BoundedHttpToolsProtocol  # noqa: E402

HEADERS = (
    b"Host: 127.0.0.1:8000\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n"
    b"Accept: application/json\r\nContent-Type: application/json\r\n"
    b"User-Agent: OpenAI/Python 2.8\r\n"
    b"X-Stainless-Lang: python\r\nX-Stainless-Package-Version: 2.8.1\r\nX-Stainless-OS: Linux\r\n"
    b"X-Stainless-Arch: x64\r\nX-Stainless-Runtime: CPython\r\nX-Stainless-Retry-Count: 0\r\n"
    b"Authorization: Bearer tb-0123456789abcdefghijklmnopqrstuvwxyzABCDEFG\r\n"
)
BODY = b'{"model": "GPT-4o", "messages": [{"role": "user", "content": "Hello!"}]}'
RESPONSE_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"2")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": RESPONSE_HEADERS})
    await send({"type": "http.response.body", "body": b"{}"})


async def run(protocol_class: type, requests: int, request: bytes) -> float:
    """Seconds per request: one client connection, one request in flight at a time."""
    loop = asyncio.get_running_loop()
    config = Config(app, lifespan="off", log_level="warning", access_log=False)
    config.load()
    state = ServerState()
    server_sock, client_sock = socket.socketpair()
    client_sock.setblocking(False)
    await loop.connect_accepted_socket(
        lambda: protocol_class(config=config, server_state=state, app_state={}), server_sock
    )
    began = time.process_time()
    for _ in range(requests):
        await loop.sock_sendall(client_sock, request)
        answer = b""
        while not answer.endswith(b"{}"):
            answer += await loop.sock_recv(client_sock, 65536)
    elapsed = time.process_time() - began
    client_sock.close()
    return elapsed / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--body", action="store_true", help="a small POST instead of a GET")
    args = parser.parse_args()
    if args.body:
        request = (
            b"POST /v1/chat/completions HTTP/1.1\r\n"
            + HEADERS
            + b"Content-Length: %d\r\n\r\n" % len(BODY)
            + BODY
        )
    else:
        request = b"GET /v1/models HTTP/1.1\r\n" + HEADERS + b"\r\n"
    # uvicorn's twice: how far apart the same code lands shows the machine's noise.
    classes = {
        "uvicorn httptools": HttpToolsProtocol,
        "front door": BoundedHttpToolsProtocol,
        "uvicorn httptools, again": HttpToolsProtocol,
    }
    results: dict[str, list[float]] = {name: [] for name in classes}
    order = list(classes)
    for _ in range(args.rounds):
        random.shuffle(order)  # no variant always runs first (or right after another)
        for name in order:
            results[name].append(uvloop.run(run(classes[name], args.requests, request)))
    base = statistics.median(results["uvicorn httptools"])
    print("| protocol | µs per request (median) | vs uvicorn's |")
    print("|---|---|---|")
    for name, samples in results.items():
        median = statistics.median(samples)
        print(f"| {name} | {median * 1e6:.2f} | {median / base:.3f} |")


if __name__ == "__main__":
    main()
