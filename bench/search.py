"""The /logs/ search box at scale, this code against a revision before it, in one run.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_search \\
        .venv/bin/python bench/search.py [BEFORE_REV]      # default BEFORE_REV: HEAD~1

Seeds N (default 1,000,000) usage records over two accounts straight in SQL
(generate_series: ~30 s; reused when already there), four models, 5% upstream errors and 3%
rate-limited, then times billing.usage_search.usage_log_page for searches that name nothing,
an error code, a model, an x-request-id of the other account, and an upstream request id: the
best of REPEAT, with the current module and with the module as it was at BEFORE_REV (loaded
from `git show`, the same database and indexes: it measures the queries, not the schema).
"""

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N = int(os.environ.get("N", "1000000"))
REPEAT = int(os.environ.get("REPEAT", "5"))
ROOT = Path(__file__).resolve().parent.parent
database = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_search")
name = database.rsplit("/", 1)[1]
subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", name], check=False)
os.environ.update(DEBUG="off", DATABASE_URL=database, ALLOWED_HOSTS="testserver")
os.environ.setdefault("SECRET_KEY", "bench-only-" + "x1y2z3" * 12)
os.environ.pop("REDIS_URL", None)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenbyte.settings")
sys.path.insert(0, str(ROOT))

import django  # noqa: E402

django.setup()

from datetime import UTC, datetime  # noqa: E402

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from accounts.models import User  # noqa: E402
from billing import usage_search  # noqa: E402
from billing.histograms import histogram_empty  # noqa: E402
from billing.models import RollupPeriod, UsageRecord, UsageRollup  # noqa: E402

MODELS = ("GPT-4o", "Claude Sonnet 4.5", "Gemini 2.5 Pro", "Mistral Large")
SEED = """
INSERT INTO billing_usagerecord (event_id, request_id, account_id, key_id, card_id,
  credential_id, endpoint, model, provider, status, error_code, stream, client_disconnected,
  uncached_input_tokens, cache_read_tokens, cache_write_tokens, output_tokens,
  reasoning_tokens, estimated, cache_write_1h_tokens, service_tier, server_tool_calls, cost,
  charged, started_at, latency_us, ttfb_us, attempts, upstream_request_id, response_id,
  attempt_log)
SELECT 'evt_' || g, 'req_' || g, CASE WHEN mod(g, 2) = 0 THEN %s ELSE %s END, mod(g, 5), 1, 1,
  'chat.completions', (ARRAY['GPT-4o', 'Claude Sonnet 4.5', 'Gemini 2.5 Pro',
  'Mistral Large'])[1 + mod(g, 4)], 'openai',
  CASE WHEN mod(g, 20) = 0 THEN 502 WHEN mod(g, 33) = 0 THEN 429 ELSE 200 END,
  CASE WHEN mod(g, 20) = 0 THEN 'upstream_error' WHEN mod(g, 33) = 0 THEN 'rate_limit_exceeded'
  ELSE '' END, mod(g, 3) = 0, false, 100, 0, 0, 50, 0, false, 0, '', '{}', 0.001, 0.001,
  now() - (g || ' seconds')::interval, 1000 + mod(g, 5000), NULL, 1,
  'upstream-' || md5(g::text), 'chatcmpl-' || g, '[]'
FROM generate_series(1, %s) g
"""


def seeded() -> tuple[int, int]:
    call_command("migrate", verbosity=0)
    one, _ = User.objects.get_or_create(email="search-one@bench.example")
    two, _ = User.objects.get_or_create(email="search-two@bench.example")
    if UsageRecord.objects.count() < N:
        UsageRecord.objects.all().delete()
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(SEED, [one.pk, two.pk, N])
            cursor.execute("VACUUM ANALYZE billing_usagerecord")
        print(f"seeded {N:,} records in {time.perf_counter() - started:.0f} s")
    for model in MODELS:  # the day rollups the search reads the models from
        UsageRollup.objects.get_or_create(
            account_id=one.pk,
            period=RollupPeriod.DAY,
            starts_at=datetime(2026, 12, 1, tzinfo=UTC),
            key_id=1,
            model=model,
            provider="openai",
            defaults={"latency_histogram": histogram_empty(), "ttfb_histogram": histogram_empty()},
        )
    return one.pk, two.pk


def module_at(revision: str) -> object:
    source = subprocess.run(
        ["git", "show", f"{revision}:billing/usage_search.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "usage_search_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("usage_search_before", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def best_ms(module: object, account_id: int, query: str) -> tuple[float, int]:
    filters = module.UsageFilters(query=query)  # type: ignore[attr-defined]
    best, rows = float("inf"), 0
    for _ in range(REPEAT):
        started = time.perf_counter()
        page = module.usage_log_page(account_id=account_id, filters=filters)  # type: ignore[attr-defined]
        best = min(best, time.perf_counter() - started)
        rows = len(page.records)
    return best * 1000, rows


def main() -> None:
    before_rev = sys.argv[1] if len(sys.argv) > 1 else "HEAD~1"
    one, _ = seeded()
    before = module_at(before_rev)
    searches = {
        "names nothing": "nothing-like-this",
        "an error code": "upstream_err",
        "a model": "gpt",
        "the other account's x-request-id": "req_777",
        "an upstream request id": "upstream-" + hashlib.md5(b"778").hexdigest(),
    }
    print(f"{'search':36} {'before ms':>10} {'now ms':>8} {'ratio':>7}  rows")
    for label, query in searches.items():
        was, was_rows = best_ms(before, one, query)
        now, rows = best_ms(usage_search, one, query)
        print(f"{label:36} {was:10.1f} {now:8.1f} {was / now:6.0f}x  {was_rows} -> {rows}")


if __name__ == "__main__":
    main()
