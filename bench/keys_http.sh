#!/usr/bin/env bash
# What a key costs per HTTP request: GET /v1/models/GPT-4o without a key (public) and with
# one (authenticated from memory + allowlist check), same server, interleaved repeats.
#   bench/keys_http.sh                   # CONNS="1 16" REPEATS=3 DURATION=10
# The server (uvicorn, 1 worker) is pinned to GW_CPUS (default 1), wrk to LOAD_CPUS (default 0).
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-"1 16"} REPEATS=${REPEATS:-3} DURATION=${DURATION:-10}
GW_CPUS=${GW_CPUS:-1} LOAD_CPUS=${LOAD_CPUS:-0} PORT=${PORT:-8767}
command -v wrk >/dev/null || { echo "missing wrk: run ../shared/bench/setup.sh --no-litellm" >&2; exit 1; }
work=$(mktemp -d)
export DEBUG=on DATABASE_URL="sqlite:///$work/bench.sqlite3"
unset REDIS_URL
.venv/bin/python manage.py migrate -v0 && .venv/bin/python manage.py bootstrap >/dev/null
key=$(.venv/bin/python manage.py mintkey bench@example.com --models "GPT-4o,Claude Sonnet 4.5" --rpm 100000000)
url="http://127.0.0.1:$PORT/v1/models/GPT-4o"
setsid taskset -c "$GW_CPUS" .venv/bin/python manage.py serve --no-celery --port "$PORT" \
  --server uvicorn >"$work/server.log" 2>&1 &
pid=$!
trap 'kill -TERM -- "-$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -sf "127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
curl -sf -H "Authorization: Bearer $key" "$url" >/dev/null  # the key is cached from here on
printf 'variant\tconns\trepeat\treq_s\tp50\tp99\n' >"$work/results.tsv"
run() {  # variant conns repeat [wrk header args...]
  local variant=$1 c=$2 repeat=$3; shift 3
  taskset -c "$LOAD_CPUS" wrk -t1 -c"$c" -d2s "$@" "$url" >/dev/null
  out=$(taskset -c "$LOAD_CPUS" wrk -t1 -c"$c" -d"${DURATION}s" --latency "$@" "$url")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out"); p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$variant" "$c" "$repeat" "$rps" "$p50" "$p99" | tee -a "$work/results.tsv"
}
for repeat in $(seq "$REPEATS"); do
  for c in $CONNS; do
    run no-key "$c" "$repeat"
    run key "$c" "$repeat" -H "Authorization: Bearer $key"
  done
done
echo
echo "| variant | connections | req/s (median of $REPEATS) | p50 | p99 |"
echo "|---|---|---|---|---|"
for variant in no-key key; do for c in $CONNS; do
  awk -F'\t' -v s="$variant" -v c="$c" '$1 == s && $2 == c' "$work/results.tsv" | sort -t$'\t' -k4 -g |
    awk -F'\t' -v n="$REPEATS" 'NR == int((n + 1) / 2) {printf "| %s | %s | %s | %s | %s |\n", $1, $2, $4, $5, $6}'
done; done
