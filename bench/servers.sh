#!/usr/bin/env bash
# ASGI server choice: the same TokenByte app under granian and uvicorn, GET /v1/models with wrk
# (from ../shared/bench/setup.sh), interleaved repeats so both see the same machine noise.
#   bench/servers.sh                     # CONNS="1 16 128" REPEATS=3 DURATION=10
# The server is pinned to GW_CPUS (default 1), wrk to LOAD_CPUS (default 0).
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-"1 16 128"} REPEATS=${REPEATS:-3} DURATION=${DURATION:-10}
GW_CPUS=${GW_CPUS:-1} LOAD_CPUS=${LOAD_CPUS:-0} PORT=${PORT:-8766}
SERVERS=${SERVERS:-"granian uvicorn"}
command -v wrk >/dev/null || { echo "missing wrk: run ../shared/bench/setup.sh --no-litellm" >&2; exit 1; }
work=$(mktemp -d)
export DEBUG=on DATABASE_URL="sqlite:///$work/bench.sqlite3"
.venv/bin/python manage.py migrate -v0 && .venv/bin/python manage.py bootstrap >/dev/null
pid=""
stop() { [ -z "$pid" ] || { kill -TERM -- "-$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }; pid=""; }
trap 'stop; rm -rf "$work"' EXIT
printf 'server\tconns\trepeat\treq_s\tp50\tp99\n' >"$work/results.tsv"
for repeat in $(seq "$REPEATS"); do
  for server in $SERVERS; do
    setsid taskset -c "$GW_CPUS" .venv/bin/python manage.py serve --no-celery --port "$PORT" \
      --server "$server" >"$work/$server.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do curl -sf "127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
    for c in $CONNS; do
      taskset -c "$LOAD_CPUS" wrk -t1 -c"$c" -d2s "http://127.0.0.1:$PORT/v1/models" >/dev/null
      out=$(taskset -c "$LOAD_CPUS" wrk -t1 -c"$c" -d"${DURATION}s" --latency "http://127.0.0.1:$PORT/v1/models")
      rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
      p50=$(awk '$1 == "50%" {print $2}' <<<"$out"); p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$c" "$repeat" "$rps" "$p50" "$p99" | tee -a "$work/results.tsv"
    done
    stop
  done
done
echo
echo "| server | connections | req/s (median of $REPEATS) | p50 | p99 |"
echo "|---|---|---|---|---|"
for server in $SERVERS; do for c in $CONNS; do
  awk -F'\t' -v s="$server" -v c="$c" '$1 == s && $2 == c' "$work/results.tsv" | sort -t$'\t' -k4 -g |
    awk -F'\t' -v n="$REPEATS" 'NR == int((n + 1) / 2) {printf "| %s | %s | %s | %s | %s |\n", $1, $2, $4, $5, $6}'
done; done
