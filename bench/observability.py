"""The console's reads at scale: the dashboard and filtered /logs/ pages over N usage records of
one account, the plans PostgreSQL picks for them, and an export's memory.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_obs \\
        .venv/bin/python bench/observability.py          # N=1000000 (created if missing)
    N=200000 .venv/bin/python bench/observability.py     # fewer; SQLite scratch without the URL

Records go in through billing's recorder (usage_events_record: records, rollups, ledger), in
batches of 5,000, over the last 30 days, 3 models x 5 keys, 10% errors, a third streamed; a
database seeded before (same N) is reused. Each page is rendered by Django's test client
(view, queries, template) REPEAT times; the median and the slowest are printed, then EXPLAIN
ANALYZE of the logs' page queries (PostgreSQL), then the export's peak Python memory.
"""

import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

N = int(os.environ.get("N", "1000000"))
REPEAT = int(os.environ.get("REPEAT", "7"))
work = Path(tempfile.mkdtemp(prefix="tokenbyte-obs-"))
database = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{work}/bench.sqlite3"
if database.startswith("postgres"):
    name = database.rsplit("/", 1)[1]
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", name], check=False)
os.environ.update(DEBUG="off", DATABASE_URL=database, ALLOWED_HOSTS="testserver")
os.environ.setdefault("SECRET_KEY", "bench-only-" + "x1y2z3" * 12)
os.environ.pop("REDIS_URL", None)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenbyte.settings")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

# Static names unhashed (no collectstatic here): the manifest's lookup is not what is measured.
settings.STORAGES = {
    **settings.STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from accounts.models import User  # noqa: E402
from billing.events import UsageEvent  # noqa: E402
from billing.models import UsageRecord  # noqa: E402
from billing.services import usage_events_record  # noqa: E402
from billing.usage import Usage  # noqa: E402
from billing.usage_search import UsageFilters, usage_filtered  # noqa: E402
from keys.services import key_mint  # noqa: E402
from keys.validation import KeySpec  # noqa: E402

MODELS = (("GPT-4o", "openai"), ("Claude Sonnet 4.5", "anthropic"), ("Gemini 2.5 Flash", "gemini"))


def seed(user: User, *, start: int) -> None:
    keys = list(user.api_keys.order_by("pk").values_list("pk", flat=True))[:5]
    while len(keys) < 5:
        keys.append(key_mint(owner=user, spec=KeySpec(name=f"key {len(keys)}")).key.pk)
    rng = random.Random(7)
    now = time.time()
    started = time.monotonic()
    for first in range(start - start % 5000, N, 5000):
        events = []
        for n in range(first, min(N, first + 5000)):
            model, provider = MODELS[n % 3]
            status = 200 if rng.random() > 0.1 else rng.choice((429, 502, 400))
            events.append(
                UsageEvent(
                    event_id=f"evt-bench-{n}",
                    request_id=f"req-{n}",
                    endpoint="chat.completions",
                    key_id=keys[n % 5],
                    account_id=user.pk,
                    card_id=None,
                    model=model,
                    provider=provider,
                    upstream_model=model.lower(),
                    credential_id=1,
                    status=status,
                    error_code=None if status == 200 else f"code_{status}",
                    stream=n % 3 == 0,
                    usage=Usage(uncached_input=rng.randint(1, 4000), output=rng.randint(0, 800)),
                    cost=Decimal(rng.randint(1, 9000)) / Decimal(10**6),
                    started_at=now - (N - n) * (30 * 86400 / N),
                    latency_ms=rng.lognormvariate(6, 1),
                    ttfb_ms=40.0 if n % 3 == 0 else None,
                    attempts=1,
                )
            )
        usage_events_record(events=events)
        if first % 100_000 == 0:
            print(f"  seeded {first + len(events):>8} ({time.monotonic() - started:.0f} s)")


def timed(client: Client, path: str) -> tuple[float, float]:
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return statistics.median(times), max(times)


def main() -> None:
    call_command("migrate", verbosity=0)
    user = User.objects.filter(email="obs@example.com").first()
    if user is None:
        user = User.objects.create_user("obs@example.com")
    have = UsageRecord.objects.filter(account=user).count()
    if have < N:  # an interrupted seeding goes on where it stopped (the ids are the same)
        print(f"seeding {N - have} more records through the recorder ({connection.vendor})")
        seed(user, start=have)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    client = Client()
    client.force_login(user)
    key = UsageRecord.objects.filter(account=user).values_list("key_id", flat=True).first()
    pages = [
        "/",
        "/?range=30d",
        "/?range=7d&model=GPT-4o",
        "/logs/",
        "/logs/?status=error",
        f"/logs/?key={key}&model=Claude+Sonnet+4.5",
        "/logs/?q=req-123456",
        "/logs/?q=code_429&range=7d",
        "/logs/?q=matches-nothing",  # text that names nothing: the whole account is scanned
        "/logs/?min_latency=5000",
    ]
    print(f"\n{N} records, {connection.vendor}; median / slowest of {REPEAT} renders, ms")
    for path in pages:
        median, slowest = timed(client, path)
        print(f"  {median:7.1f} / {slowest:7.1f}  {path}")
    # A deep page: the cursor of the 20th page of errors.
    response = client.get("/logs/?status=error")
    for _ in range(19):
        after = response.content.decode().split("after=", 1)[1].split('"', 1)[0]
        response = client.get(f"/logs/?status=error&after={after}")
    median, slowest = timed(client, f"/logs/?status=error&after={after}")
    print(f"  {median:7.1f} / {slowest:7.1f}  /logs/?status=error, page 21")

    if connection.vendor == "postgresql":
        for label, filters in (
            ("newest page", UsageFilters()),
            ("errors", UsageFilters(status="error")),
            ("key and model", UsageFilters(key_id=key, model="Claude Sonnet 4.5")),
        ):
            query = usage_filtered(account_id=user.pk, filters=filters)[:51]
            sql, params = query.query.sql_with_params()
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}", params)
                plan = "\n    ".join(row[0] for row in cursor.fetchall())
            print(f"\nEXPLAIN ANALYZE, {label}:\n    {plan}")

    # The export as the ASGI server reads it (the async iterator), not through the test
    # client, which would gather it in a list first.
    response = client.get("/logs/export.csv?range=7d")

    async def consume() -> int:
        size = 0
        async for chunk in response.streaming_content:  # type: ignore[attr-defined]
            size += len(chunk)
        return size

    tracemalloc.start()
    start = time.perf_counter()
    size = asyncio.run(consume())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(
        f"\nexport.csv of the last 7 days: {size / 1e6:.1f} MB in "
        f"{time.perf_counter() - start:.1f} s, peak Python memory {peak / 1e6:.1f} MB"
    )


if __name__ == "__main__":
    main()
    print(f"at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
