#!/usr/bin/env bash
# CPU per request of one gateway process, thread by thread (/proc's utime + stime over a run):
# the event loop's thread apart from the others (in embedded mode the busiest other one is the
# usage recorder's). Finer than req/s on a noisy VM: each checkout given runs in turn, ROUNDS
# times, json to the shared harness's nginx mock, embedded mode (SQLite, no Redis).
#
#   bench/thread_cpu.sh /tmp/tb-before .            # two checkouts, alternating
#   ROUNDS=3 CONNS=16 DURATION=10 EXTRA_ENV="TOKENBYTE_ACCESS_LOG=off" bench/thread_cpu.sh .
#
# Redis mode (nothing consumes the stream; the checkouts' fresh databases share account ids, so
# flush before each run):
#   EXTRA_ENV="REDIS_URL=redis://127.0.0.1:6379/7" BEFORE_EACH="redis-cli -n 7 flushdb" ...
#
# Needs ../shared/bench/setup.sh once.
set -euo pipefail
cd "$(dirname "$0")/.."
HERE=$(pwd) SHARED=${SHARED_BENCH:-$(cd ../shared/bench && pwd)}
ROUNDS=${ROUNDS:-3} CONNS=${CONNS:-16} DURATION=${DURATION:-10}
GW_CPUS=${GW_CPUS:-1} LOAD_CPUS=${LOAD_CPUS:-0} TB_PORT=${TB_PORT:-8074} MOCK_PORT=${MOCK_PORT:-9174}
OUT=${OUT:-/tmp/thread-cpu-$(date +%Y%m%d-%H%M%S)}
PY=$HERE/.venv/bin/python
mkdir -p "$OUT"
setsid taskset -c "$LOAD_CPUS" "$SHARED/mock/mock.sh" "$MOCK_PORT" 0 "$OUT/mock" >"$OUT/mock.log" 2>&1 &
mock=$!
trap 'kill -TERM -- "-$mock" 2>/dev/null || true' EXIT

one() {  # one checkout, one round (in a subshell): prints "rps main_us others_us total_us"
    local src=$1 dir=$2
    server=
    trap '[ -z "${server:-}" ] || kill -TERM -- "-$server" 2>/dev/null || true' EXIT
    mkdir -p "$dir"
    eval "${BEFORE_EACH:-}" >/dev/null
    # shellcheck disable=SC2206  # EXTRA_ENV is a word list
    local env=(DEBUG=off LOG_LEVEL=WARNING REDIS_URL= DATABASE_URL="sqlite:///$dir/db.sqlite3"
        SECRET_KEY="bench-only-$(head -c 48 /dev/urandom | base64 | tr -d '/+=')" ${EXTRA_ENV:-})
    manage() { (cd "$src" && env "${env[@]}" "$PY" manage.py "$@"); }
    manage migrate --verbosity 0
    manage upstream add openai-compatible --name mock --api-key sk-mock-upstream --no-verify \
        --base-url "http://127.0.0.1:$MOCK_PORT/v1" >/dev/null
    manage catalog add mock-gpt --upstream mock --provider openai-compatible --upstream-id mock-gpt \
        --context-length 8192 --max-output-tokens 1024 --input-price 0.15 --output-price 0.60 >/dev/null
    local key
    key=$(manage mintkey bench@example.com --name bench 2>/dev/null)
    manage credit bench@example.com 1000000 --note bench >/dev/null 2>&1 || true  # a676b10 has none
    (cd "$src" && exec setsid taskset -c "$GW_CPUS" env "${env[@]}" "$PY" manage.py serve \
        --no-celery --port "$TB_PORT") >"$dir/server.log" 2>&1 &
    server=$!
    for _ in $(seq 100); do curl -sf "127.0.0.1:$TB_PORT/readyz" >/dev/null && break; sleep 0.2; done
    local worker
    worker=$(pgrep -f "uvicorn tokenbyte.asgi:application --host 127.0.0.1 --port $TB_PORT" | head -1)
    drive() {
        BENCH_BODY='{"model":"mock-gpt","messages":[{"role":"user","content":"Say hello."}]}' \
            BENCH_KEY="$key" taskset -c "$LOAD_CPUS" wrk -t1 -c"$CONNS" -d"$1"s -s "$SHARED/wrk.lua" \
            "http://127.0.0.1:$TB_PORT/v1/chat/completions" | grep RESULT
    }
    snap() { for t in /proc/"$worker"/task/*; do echo "${t##*/} $(awk '{print $14 + $15}' "$t/stat")"; done; }
    drive 3 >/dev/null  # warm-up
    snap >"$dir/before"
    drive "$DURATION" >"$dir/wrk.txt"
    sleep 0.5
    snap >"$dir/after"
    kill -TERM -- "-$server" 2>/dev/null || true
    while curl -sf "127.0.0.1:$TB_PORT/readyz" >/dev/null 2>&1; do sleep 0.2; done
    local n rps
    n=$(sed 's/.*requests=\([0-9]*\).*/\1/' "$dir/wrk.txt")
    rps=$(sed 's/.*rps=\([0-9.]*\).*/\1/' "$dir/wrk.txt")
    # Clock ticks (1/100 s) per thread -> microseconds per request.
    join "$dir/before" "$dir/after" | awk -v n="$n" -v main="$worker" -v rps="$rps" '
        { d = ($3 - $2) * 1e4 / n; if ($1 == main) m += d; else o += d }
        END { printf "%.0f %.0f %.0f %.0f\n", rps, m, o, m + o }'
}

printf 'round\tcheckout\treq/s\tloop thread us/req\tother threads us/req\ttotal us/req\n' | tee "$OUT/threads.tsv"
for round in $(seq "$ROUNDS"); do
    for src in "$@"; do
        src=$(cd "$src" && pwd)
        name=$(basename "$src")-$(git -C "$src" log -1 --format=%h)  # two worktrees may share a commit
        read -r rps m o t < <(one "$src" "$OUT/$round-$name")
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$rps" "$m" "$o" "$t" | tee -a "$OUT/threads.tsv"
    done
done
echo "results: $OUT"
