"""Our upstream transport against another checkout's: CPU time per call, before/after.

Each round runs a fresh process per checkout, alternating, with that checkout first on
sys.path; each process sends JSON requests to the shared nginx mock one at a time and 16 at
once and prints its CPU time per call (process_time: every thread of the process). Medians of
the rounds; start the mock first (`taskset -c 0 ../shared/bench/mock/mock.sh 9100 0 /tmp/mock &`):

    taskset -c 1 .venv/bin/python bench/transport_ab.py /tmp/tb-before [--rounds 7] [URL]
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = """
import asyncio, json, sys, time
import httpx, uvloop
from proxy.upstream.request import UpstreamRequest
from proxy.upstream.transport import UpstreamTransport

URL = httpx.URL(sys.argv[1])
BODY = b'{"model":"mock-gpt","messages":[{"role":"user","content":"Say hello."}]}'
HEADERS = [(b"content-type", b"application/json"), (b"authorization", b"Bearer x")]


async def main() -> None:
    transport = UpstreamTransport()

    async def call() -> None:
        request = UpstreamRequest("POST", URL, list(HEADERS), BODY)
        request.extensions["timeout"] = {"connect": 10.0, "read": 60.0, "pool": 10.0}
        response = await transport.send(request)
        async for _ in response.stream:
            pass
        await response.aclose()

    async def per_call(calls: int, callers: int) -> float:
        async def caller() -> None:
            for _ in range(calls):
                await call()

        started = time.process_time()
        await asyncio.gather(*(caller() for _ in range(callers)))
        return (time.process_time() - started) / (calls * callers) * 1e6

    await per_call(300, 1)  # warm-up: connections, caches
    print(json.dumps({"one": await per_call(2000, 1), "sixteen": await per_call(150, 16)}))


uvloop.run(main())
"""


def measure(checkout: Path, url: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(checkout)!r})\n" + CHILD, url],
        check=True,
        capture_output=True,
        text=True,
        cwd=checkout,
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("baseline", type=Path, help="another checkout, e.g. a git worktree")
    parser.add_argument("url", nargs="?", default="http://127.0.0.1:9100/v1/chat/completions")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    checkouts = {"baseline": args.baseline.resolve(), "this": Path(__file__).parents[1]}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in checkouts}
    for round_ in range(args.rounds):
        order = list(checkouts.items())
        for name, checkout in order if round_ % 2 == 0 else order[::-1]:
            results[name].append(measure(checkout, args.url))
    print("| transport | CPU µs/call, 1 at a time | CPU µs/call, 16 at once |")
    print("|---|---|---|")
    for name, rows in results.items():
        one = statistics.median(row["one"] for row in rows)
        sixteen = statistics.median(row["sixteen"] for row in rows)
        print(f"| {name} | {one:.1f} | {sixteen:.1f} |")


if __name__ == "__main__":
    main()
