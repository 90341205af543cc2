"""Cost of observing one API request (proxy/gateway/observe.py): its metrics and access line.

    .venv/bin/python bench/observe.py            # this process's registry
    PROMETHEUS_MULTIPROC_DIR=$(mktemp -d) .venv/bin/python bench/observe.py   # as under serve

Pure CPU: `observe` on a streamed chat request's usage event, with the access log off (the
logger above INFO: the line is not built) and on (written to /dev/null through a handler), per
event when each is observed alone and when BATCH of them are (the gateway's Observer batches
what ends within 50 ms: ~150 events at 3,000 req/s).
"""

import logging
import timeit
from collections.abc import Callable
from decimal import Decimal

from billing.events import UsageEvent
from billing.usage import Usage
from proxy.gateway.observe import ACCESS_LOG, access_line, observe

CALLS = 100_000
BATCH = 100
EVENT = UsageEvent(
    event_id="evt_1",
    request_id="req_0123456789abcdef0123456789abcdef",
    endpoint="chat.completions",
    key_id=1,
    account_id=2,
    card_id=3,
    model="GPT-4o",
    provider="openai",
    upstream_model="gpt-4o",
    credential_id=4,
    status=200,
    error_code=None,
    stream=True,
    usage=Usage(uncached_input=12, output=30),
    cost=Decimal("0.000123"),
    started_at=1.0,
    latency_ms=12.3,
    ttfb_ms=3.2,
    attempts=1,
)


def per_call(function: Callable[[], object], events: int = 1) -> float:
    calls = CALLS // events
    best = min(timeit.repeat(function, number=calls, repeat=5))
    return best / (calls * events) * 1e6


def report(log: str) -> None:
    alone, batch = [EVENT], [EVENT] * BATCH
    print(f"observe, access log {log}: alone {per_call(lambda: observe(alone)):.1f} us, ", end="")
    print(f"in batches of {BATCH} {per_call(lambda: observe(batch), BATCH):.1f} us an event")


def main() -> None:
    ACCESS_LOG.propagate = False
    ACCESS_LOG.setLevel(logging.CRITICAL)
    report("off")
    with open("/dev/null", "w") as null:
        handler = logging.StreamHandler(null)
        handler.setFormatter(logging.Formatter("%(message)s"))
        ACCESS_LOG.addHandler(handler)
        ACCESS_LOG.setLevel(logging.INFO)
        report("on ")
    print(f"the access line alone:   {per_call(lambda: access_line(EVENT, 12, 30)):.1f} us")


if __name__ == "__main__":
    main()
