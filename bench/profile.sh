#!/usr/bin/env bash
# Where one gateway process spends its CPU under load: py-spy samples the uvicorn worker while
# wrk drives POST /v1/chat/completions through it to the shared harness's nginx mock; prints
# the functions with the most self time.
#
#   bench/profile.sh [SRC]        # SRC: a checkout to profile, e.g. a worktree of an older
#                                 # commit for a before/after (default: this one)
#   MODE=sse CONNS=128 DELAY_MS=200 DURATION=20 bench/profile.sh   # DELAY_MS: upstream delay
#   TB_REDIS_URL=redis://127.0.0.1:6379/7 bench/profile.sh   # with Redis (default: embedded)
#   SPY_ARGS=--gil bench/profile.sh   # only samples that hold the GIL: Python's own CPU, no idle
#
# Needs ../shared/bench/setup.sh once and py-spy (`.venv/bin/pip install -e '.[bench]'`).
set -euo pipefail
cd "$(dirname "$0")/.."
HERE=$(pwd) SRC=$(cd "${1:-.}" && pwd)
SHARED=${SHARED_BENCH:-$(cd ../shared/bench && pwd)}
MODE=${MODE:-json} CONNS=${CONNS:-16} DELAY_MS=${DELAY_MS:-0} DURATION=${DURATION:-15} TOP=${TOP:-20}
GW_CPUS=${GW_CPUS:-1} LOAD_CPUS=${LOAD_CPUS:-0} TB_PORT=${TB_PORT:-8012} MOCK_PORT=${MOCK_PORT:-9101}
OUT=${OUT:-/tmp/profile-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
PY=$HERE/.venv/bin/python
[ -x "$HERE/.venv/bin/py-spy" ] || { echo "py-spy missing: .venv/bin/pip install -e '.[bench]'" >&2; exit 1; }

TB_ENV=(
    DEBUG=off LOG_LEVEL=WARNING REDIS_URL="${TB_REDIS_URL:-}"
    SECRET_KEY="bench-only-$(head -c 48 /dev/urandom | base64 | tr -d '/+=')"
    DATABASE_URL="sqlite:///$OUT/db.sqlite3"
)
manage() { (cd "$SRC" && env "${TB_ENV[@]}" "$PY" manage.py "$@"); }
manage migrate --verbosity 0
# The mock starts below: skip the key check where SRC's CLI has one (older checkouts do not).
no_verify=$(manage upstream add --help 2>/dev/null | grep -o -- --no-verify | head -1 || true)
manage upstream add openai-compatible --name mock --api-key sk-mock-upstream $no_verify \
    --base-url "http://127.0.0.1:$MOCK_PORT/v1" >/dev/null
manage catalog add mock-gpt --upstream mock --provider openai-compatible --upstream-id mock-gpt \
    --context-length 8192 --max-output-tokens 1024 --input-price 0.15 --output-price 0.60 >/dev/null
KEY=$(manage mintkey bench@example.com --name bench)
# Prepaid: the balance must cover every reservation (worst case) in flight.
manage credit bench@example.com 1000000 --note bench >/dev/null

pids=()
stop() { for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap stop EXIT
setsid taskset -c "$LOAD_CPUS" "$SHARED/mock/mock.sh" "$MOCK_PORT" "$DELAY_MS" "$OUT/mock" >"$OUT/mock.log" 2>&1 &
pids+=($!)
(cd "$SRC" && exec setsid taskset -c "$GW_CPUS" env "${TB_ENV[@]}" "$PY" manage.py serve --no-celery \
    --port "$TB_PORT") >"$OUT/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "127.0.0.1:$TB_PORT/readyz" >/dev/null && break; sleep 0.2; done
worker=$(pgrep -f "uvicorn tokenbyte.asgi:application --host 127.0.0.1 --port $TB_PORT" | head -1)
[ -n "$worker" ] || { cat "$OUT/server.log"; exit 1; }

stream=false
[ "$MODE" = sse ] && stream=true
wrk_run() {
    BENCH_BODY="{\"model\":\"mock-gpt\",\"stream\":$stream,\"messages\":[{\"role\":\"user\",\"content\":\"Say hello.\"}]}" \
    BENCH_KEY="$KEY" taskset -c "$LOAD_CPUS" wrk -t1 -c"$CONNS" -d"$1"s -s "$SHARED/wrk.lua" \
        "http://127.0.0.1:$TB_PORT/v1/chat/completions" | grep RESULT
}
wrk_run 3 >/dev/null  # warm-up: pools, caches
"$HERE/.venv/bin/py-spy" record --pid "$worker" --duration "$DURATION" --rate 250 --nonblocking ${SPY_ARGS:-} \
    --format raw --nolineno --output "$OUT/stacks.txt" >"$OUT/py-spy.log" 2>&1 &
spy=$!
sleep 1
wrk_run $((DURATION + 1)) | tee "$OUT/wrk.txt"
wait "$spy"

# Self time per function (the innermost frame of each sampled stack), in % of all samples.
"$PY" - "$OUT/stacks.txt" "$TOP" <<'PY'
import collections, sys
self_time: collections.Counter[str] = collections.Counter()
total = 0
for line in open(sys.argv[1]):
    stack, _, count = line.rstrip().rpartition(" ")
    frame = stack.rsplit(";", 1)[-1]
    name, _, where = frame.partition(" (")
    module = where.rstrip(")").replace("site-packages/", "|").split("|")[-1]
    self_time[f"{name} ({module})"] += int(count)
    total += int(count)
print(f"{total} samples; self time, top {sys.argv[2]}:")
for frame, count in self_time.most_common(int(sys.argv[2])):
    print(f"{100 * count / total:5.1f}%  {frame}")
PY
echo "stacks: $OUT/stacks.txt (flamegraph: py-spy record --format flamegraph)"
