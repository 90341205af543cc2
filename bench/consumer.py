"""How many usage events one metering consumer records per second: billing's drain (XREADGROUP,
one transaction per batch, XACK, the reservations' CLEAR) on a stream filled beforehand.

    .venv/bin/python bench/consumer.py                       # SQLite scratch database
    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_consumer \\
        .venv/bin/python bench/consumer.py                   # PostgreSQL (created if missing)

N (default 20000) events over KEYS keys (default 20) of one account, on Redis db BENCH_REDIS_DB
(default 9, flushed first). Prints events/s; compare with the gateway's req/s per process
(bench/README.md) for how many gateway processes one worker keeps up with.
"""

import os
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

work = Path(tempfile.mkdtemp(prefix="tokenbyte-consumer-"))
database = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{work}/bench.sqlite3"
if database.startswith("postgres"):
    name = database.rsplit("/", 1)[1]
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", name], check=False)
redis_url = f"redis://127.0.0.1:6379/{os.environ.get('BENCH_REDIS_DB', '9')}"
os.environ.update(DEBUG="on", DATABASE_URL=database, REDIS_URL=redis_url)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenbyte.settings")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django  # noqa: E402

django.setup()

import redis  # noqa: E402
from django.core.management import call_command  # noqa: E402

from accounts.models import User  # noqa: E402
from billing import tasks  # noqa: E402
from billing.events import UsageEvent  # noqa: E402
from billing.models import UsageRecord  # noqa: E402
from billing.usage import Usage  # noqa: E402
from tokenbyte.redis import USAGE_STREAM  # noqa: E402

N = int(os.environ.get("N", "20000"))
KEYS = int(os.environ.get("KEYS", "20"))

call_command("migrate", verbosity=0)
owner, _ = User.objects.get_or_create(email="consumer-bench@example.com")
client = redis.Redis.from_url(redis_url)
client.flushdb()
now = time.time()
with client.pipeline(transaction=False) as pipe:
    for index in range(N):
        event = UsageEvent(
            event_id=f"bench{now:.0f}{index:08d}",
            request_id=f"req_bench{index}",
            endpoint="chat.completions",
            key_id=1 + index % KEYS,
            account_id=owner.pk,
            card_id=1,
            model="GPT-4o",
            provider="openai",
            upstream_model="gpt-4o",
            credential_id=1,
            status=200,
            error_code=None,
            stream=index % 3 == 0,
            usage=Usage(120, 30, 0, 40, 8),
            cost=Decimal("0.000567"),
            started_at=now - (N - index) / 1000,
            latency_ms=12.5 + index % 50,
            ttfb_ms=3.0,
            attempts=1,
        )
        pipe.xadd(USAGE_STREAM, {"event": event.to_json()})
    pipe.execute()
before = UsageRecord.objects.count()
started = time.perf_counter()
recorded = 0
while recorded < N:
    recorded += tasks.drain(client, consumer="bench", budget=60)
seconds = time.perf_counter() - started
assert UsageRecord.objects.count() - before == N
engine = "PostgreSQL" if database.startswith("postgres") else "SQLite"
print(f"{engine}: {N} events in {seconds:.2f} s = {N / seconds:,.0f} events/s (one consumer)")
client.flushdb()
client.close()
