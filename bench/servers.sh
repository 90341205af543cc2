#!/usr/bin/env bash
# ASGI server choice, and A/B runs of a change: the same TokenByte app under each entry of
# SERVERS, with wrk (from ../shared/bench/setup.sh), interleaved repeats so all see the same
# machine noise. Two requests: GET /v1/models (no upstream) and a chat completion against the
# shared mock upstream (../shared/bench/mock).
#   bench/servers.sh                     # SERVERS="granian uvicorn" CONNS="1 16 128" REPEATS=3
#   TB_BASELINE=/tmp/tb-before SERVERS="baseline uvicorn" REQUESTS="models chat" bench/servers.sh
# SERVERS entries: uvicorn, granian (`manage.py serve --server`), baseline (TB_BASELINE's
# checkout, say `git archive main | tar -x -C /tmp/tb-before`, under its own serve, our venv).
# The server is pinned to GW_CPUS (default 1), wrk and the mock to LOAD_CPUS (default 0).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED_BENCH:-$(cd ../shared/bench && pwd)}
CONNS=${CONNS:-"1 16 128"} REPEATS=${REPEATS:-3} DURATION=${DURATION:-10}
GW_CPUS=${GW_CPUS:-1} LOAD_CPUS=${LOAD_CPUS:-0} PORT=${PORT:-8766} MOCK_PORT=${MOCK_PORT:-9166}
SERVERS=${SERVERS:-"granian uvicorn"} REQUESTS=${REQUESTS:-models}
command -v wrk >/dev/null || { echo "missing wrk: run ../shared/bench/setup.sh --no-litellm" >&2; exit 1; }
work=$(mktemp -d) root=$PWD
export DEBUG=off LOG_LEVEL=WARNING DATABASE_URL="sqlite:///$work/bench.sqlite3" REDIS_URL=
export SECRET_KEY="bench-only-$(head -c 48 /dev/urandom | base64 | tr -d '/+=')"
manage() { .venv/bin/python manage.py "$@"; }
manage migrate -v0 && manage bootstrap >/dev/null
manage upstream add openai-compatible --name mock --api-key sk-mock --no-verify \
    --base-url "http://127.0.0.1:$MOCK_PORT/v1" >/dev/null
manage catalog add mock-gpt --upstream mock --provider openai-compatible --upstream-id mock-gpt \
    --context-length 8192 --max-output-tokens 1024 --input-price 0.15 --output-price 0.60 >/dev/null
KEY=$(manage mintkey bench@example.com --name bench)
# Prepaid: the balance must cover every reservation (worst case) in flight.
manage credit bench@example.com 1000000 --note bench >/dev/null
pid="" mock=""
stop() { [ -z "$pid" ] || { kill -TERM -- "-$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }; pid=""; }
trap 'stop; [ -z "$mock" ] || kill -TERM "$mock" 2>/dev/null; rm -rf "$work"' EXIT
if [[ " $REQUESTS " == *" chat "* ]]; then
    setsid taskset -c "$LOAD_CPUS" "$SHARED/mock/mock.sh" "$MOCK_PORT" 0 "$work/mock" >"$work/mock.log" 2>&1 &
    mock=$!
fi
start() {  # start SERVER: serves on $PORT, pinned to GW_CPUS
    if [ "$1" = baseline ]; then
        (cd "${TB_BASELINE:?baseline needs TB_BASELINE}" && exec setsid taskset -c "$GW_CPUS" \
            "$root/.venv/bin/python" manage.py serve --no-celery --port "$PORT") >"$work/$1.log" 2>&1 &
    else
        setsid taskset -c "$GW_CPUS" .venv/bin/python manage.py serve --no-celery --port "$PORT" \
            --server "$1" >"$work/$1.log" 2>&1 &
    fi
    pid=$!
    for _ in $(seq 100); do curl -sf "127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
}
cpu_ticks() {  # user + system clock ticks of process $1 and all its descendants
    local roots=" $1 " p total=0 grew=1 stat
    while [ "$grew" = 1 ]; do
        grew=0
        for p in $(ps -e -o pid=,ppid= | awk -v r="$roots" 'index(r, " " $2 " ") && !index(r, " " $1 " ") {print $1}'); do
            roots="$roots$p "; grew=1
        done
    done
    for p in $roots; do
        stat=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null) || continue
        total=$((total + $(awk '{print $12 + $13}' <<<"$stat")))
    done
    echo "$total"
}
measure() {  # measure REQUEST CONNS SECONDS: prints "req_s p50 p99 errors cpu_us_per_request"
    local url="http://127.0.0.1:$PORT" out line before
    before=$(cpu_ticks "$pid")
    if [ "$1" = models ]; then
        out=$(taskset -c "$LOAD_CPUS" wrk -t1 -c"$2" -d"$3s" --latency "$url/v1/models")
        line=$(awk '/requests in/ {n = $1} /Requests\/sec/ {r = $2} $1 == "50%" {p50 = $2}
                    $1 == "99%" {p99 = $2} /Non-2xx/ {e = $NF} END {print r, p50, p99, e + 0, n}' <<<"$out")
    else
        out=$(BENCH_BODY='{"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}' \
            BENCH_KEY=$KEY taskset -c "$LOAD_CPUS" wrk -t1 -c"$2" -d"$3s" -s "$SHARED/wrk.lua" \
            "$url/v1/chat/completions")
        line=$(awk '/^RESULT/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
            print v["rps"], v["p50_ms"] "ms", v["p99_ms"] "ms",
                  v["err_connect"] + v["err_read"] + v["err_write"] + v["err_status"] + v["err_timeout"],
                  v["requests"] }' <<<"$out")
    fi
    # CPU time the server spent per request: steadier than req/s when others share the machine.
    awk -v t="$(( $(cpu_ticks "$pid") - before ))" -v hz="$(getconf CLK_TCK)" \
        '{printf "%s %s %s %s %.0f\n", $1, $2, $3, $4, ($5 > 0 ? t / hz * 1e6 / $5 : 0)}' <<<"$line"
}
printf 'server\trequest\tconns\trepeat\treq_s\tp50\tp99\tcpu_us\n' >"$work/results.tsv"
for repeat in $(seq "$REPEATS"); do
  for server in $SERVERS; do
    start "$server"
    for request in $REQUESTS; do for c in $CONNS; do
      measure "$request" "$c" 2 >/dev/null
      read -r rps p50 p99 errors cpu <<<"$(measure "$request" "$c" "$DURATION")"
      [ "${errors:-0}" = 0 ] || echo "$server $request $c: $errors errors" >&2
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$request" "$c" "$repeat" "$rps" "$p50" "$p99" \
        "$cpu" |
        tee -a "$work/results.tsv"
    done; done
    stop
  done
done
echo
first=${SERVERS%% *}
echo "| server | request | connections | req/s (median of $REPEATS) | vs $first | p50 | p99 | server CPU µs/request (median) | vs $first |"
echo "|---|---|---|---|---|---|---|---|---|"
for request in $REQUESTS; do for c in $CONNS; do
  median() {  # median SERVER COLUMN
    awk -F'\t' -v s="$1" -v q="$request" -v c="$c" -v k="$2" '$1 == s && $2 == q && $3 == c {print $k}' \
        "$work/results.tsv" | sort -g | awk -v n="$REPEATS" 'NR == int((n + 1) / 2)'
  }
  base=$(median "$first" 5) base_cpu=$(median "$first" 8)
  for server in $SERVERS; do
    cpu=$(median "$server" 8)
    awk -F'\t' -v s="$server" -v q="$request" -v c="$c" '$1 == s && $2 == q && $3 == c' "$work/results.tsv" |
      sort -t$'\t' -k5 -g | awk -F'\t' -v n="$REPEATS" -v base="$base" -v cpu="$cpu" -v bcpu="$base_cpu" '
        NR == int((n + 1) / 2) { printf "| %s | %s | %s | %s | %.3f | %s | %s | %s | %.3f |\n",
                                 $1, $2, $3, $5, $5 / base, $6, $7, cpu, cpu / bcpu }'
  done
done; done
