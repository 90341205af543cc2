"""What key authentication adds to a /v1 request, in process (no HTTP, no server).

    .venv/bin/python bench/key_auth.py          # N=200000 calls per figure

Runs on a throw-away SQLite database (the cached path never touches it) and prints the cost
per call of: a bare SHA-256 of a key, `authenticate()` served from memory, the same with an
IP allowlist, and a miss (Redis off: memory -> database).
"""

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

work = Path(tempfile.mkdtemp(prefix="tokenbyte-bench-"))
os.environ.update(DEBUG="on", DATABASE_URL=f"sqlite:///{work}/bench.sqlite3")
os.environ.pop("REDIS_URL", None)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenbyte.settings")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django  # noqa: E402

django.setup()

from hashlib import sha256  # noqa: E402

from django.core.management import call_command  # noqa: E402

from accounts.models import User  # noqa: E402
from keys.services import key_mint  # noqa: E402
from keys.validation import KeySpec  # noqa: E402
from proxy.gateway.auth.authenticate import authenticate  # noqa: E402
from proxy.gateway.auth.key_cache import KeyResolver  # noqa: E402
from proxy.gateway.http import Request  # noqa: E402
from proxy.gateway.ids import IdSource  # noqa: E402
from proxy.gateway.runtime import Runtime  # noqa: E402
from tokenbyte.gateway_stores import gateway_stores  # noqa: E402

N = int(os.environ.get("N", "200000"))


def request(secret: str) -> Request:
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"OpenAI/Python 1.0"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {secret}".encode()),
    ]
    scope = {"method": "POST", "path": "/v1/chat/completions", "headers": headers}
    return Request({**scope, "client": ("10.1.2.3", 50000)}, _no_body, _no_send, IdSource())


async def _no_body() -> dict[str, Any]:  # authentication reads no body and sends nothing
    return {"type": "http.request", "body": b"", "more_body": False}


async def _no_send(message: dict[str, Any]) -> None:
    return None


def report(label: str, start: float, calls: int) -> None:
    print(f"{label:<44} {(time.perf_counter() - start) / calls * 1e6:8.2f} µs per call")


async def per_call(label: str, secret: str, runtime: Runtime) -> None:
    req = request(secret)
    await authenticate(req, runtime.keys)  # fill the cache
    start = time.perf_counter()
    for _ in range(N):
        await authenticate(req, runtime.keys)
    report(label, start, N)


def setup() -> tuple[str, str]:
    call_command("migrate", verbosity=0)
    owner = User.objects.create_user("bench@example.com")
    plain = key_mint(owner=owner, spec=KeySpec(name="plain", rpm=60)).secret
    fenced = key_mint(
        owner=owner, spec=KeySpec(name="fenced", allowed_networks=("10.0.0.0/8", "2001:db8::/32"))
    ).secret
    return plain, fenced


async def main(plain: str, fenced: str) -> None:
    token = plain.encode()
    start = time.perf_counter()
    for _ in range(N):
        sha256(token).hexdigest()
    report("sha256(key).hexdigest() alone", start, N)
    stores = gateway_stores()
    runtime = Runtime(stores)
    runtime.keys = KeyResolver(None, stores.keys)
    await per_call("authenticate(), cached", plain, runtime)
    await per_call("authenticate(), cached, 2 IP ranges", fenced, runtime)
    misses = 2000
    start = time.perf_counter()
    for _ in range(misses):
        runtime.keys.clear()
        await authenticate(request(plain), runtime.keys)
    report("authenticate(), miss (SQLite, thread hop)", start, misses)


if __name__ == "__main__":
    asyncio.run(main(*setup()))
