#!/usr/bin/env bash
# TokenByte against a direct call and LiteLLM, in one run of the shared harness, then the
# streaming time-to-first-byte check (bench/ttfb.py).
#
#   bench/run.sh                      # all of ../shared/bench/run.sh's default scenarios
#   SCENARIOS="json:1:0 json:16:0" REPEATS=1 DURATION=5 bench/run.sh
#   TARGETS="" bench/run.sh           # TokenByte alone (no LiteLLM)
#   TTFB_REQUESTS=0 bench/run.sh      # without the TTFB check
#   TB_SERVERS="uvicorn granian" bench/run.sh   # TokenByte under each ASGI server, side by side
#   TB_BASELINE=/tmp/tb-before bench/run.sh     # and another checkout (say, the commit before a
#                                               # change) as "tokenbyte-baseline", same settings
#   TB_VARIANTS="a=/tmp/tb-a b=/tmp/tb-b" bench/run.sh   # and more checkouts as "tokenbyte-a",
#                               # "tokenbyte-b": each on a database of its own, made by its own
#                               # manage.py (their schemas may differ; they need `credit`)
#   TB_TRACING=1 bench/run.sh         # and this checkout with OpenTelemetry traces on, as
#                                     # "tokenbyte-traced" (spans to bench/otlp_sink.py)
#
# TokenByte runs as `make run` would, one worker pinned to GW_CPUS (default 1), on a scratch
# SQLite database; TB_REDIS_URL=redis://… runs it with Redis (metering to a Redis stream).
# Needs ../shared/bench/setup.sh once (wrk, nginx mock, LiteLLM in /tmp/litellm-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED_BENCH:-$(cd ../shared/bench && pwd)}
GW_CPUS=${GW_CPUS:-1} LOAD_CPUS=${LOAD_CPUS:-0}
TB_PORT=${TB_PORT:-8010} MOCK_PORT=${MOCK_PORT:-9100} TTFB_PORT=${TTFB_PORT:-9110} RELAY_PORT=${RELAY_PORT:-9111}
TARGETS=${TARGETS-litellm}
export OUT=${OUT:-/tmp/bench-tokenbyte-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/tokenbyte"

# TokenByte's settings go to its own processes only: LiteLLM reads DATABASE_URL too.
TB_ENV=(
    DEBUG=off LOG_LEVEL=WARNING REDIS_URL="${TB_REDIS_URL:-}"
    SECRET_KEY="bench-only-$(head -c 48 /dev/urandom | base64 | tr -d '/+=')"
    DATABASE_URL="sqlite:///$OUT/tokenbyte/db.sqlite3"
)
manage() { env "${TB_ENV[@]}" .venv/bin/python manage.py "$@"; }
manage migrate --verbosity 0
manage upstream add openai-compatible --name mock --api-key sk-mock-upstream --no-verify \
    --base-url "http://127.0.0.1:$MOCK_PORT/v1" >/dev/null
manage upstream add openai-compatible --name ttfb-mock --api-key sk-ttfb --no-verify \
    --base-url "http://127.0.0.1:$TTFB_PORT/v1" >/dev/null
for card in mock-gpt:mock ttfb-gpt:ttfb-mock; do
    manage catalog add "${card%%:*}" --upstream "${card#*:}" --provider openai-compatible \
        --upstream-id mock-gpt --context-length 8192 --max-output-tokens 1024 \
        --input-price 0.15 --output-price 0.60 >/dev/null
done
KEY=$(manage mintkey bench@example.com --name bench)
# Prepaid: the balance must cover every reservation (worst case) in flight.
manage credit bench@example.com 1000000 --note bench >/dev/null

pids=()
stop() { for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap stop EXIT
# One TokenByte per server in TB_SERVERS, all pinned to GW_CPUS and measured in turn.
tb_targets=() port=$TB_PORT
for server in ${TB_SERVERS:-uvicorn}; do
    name=tokenbyte
    [ "$server" = uvicorn ] || name=tokenbyte-$server
    mkdir -p "$OUT/$name"
    setsid taskset -c "$GW_CPUS" env "${TB_ENV[@]}" .venv/bin/python manage.py serve --no-celery \
        --server "$server" --port "$port" >"$OUT/$name/server.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do curl -sf "127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
    curl -sf "127.0.0.1:$port/readyz" >/dev/null || { cat "$OUT/$name/server.log"; exit 1; }
    tb_targets+=("$name=http://127.0.0.1:$port/v1,$KEY,mock-gpt")
    port=$((port + 1))
done
if [ -n "${TB_TRACING:-}" ]; then
    # This checkout again, tracing to an OTLP sink on the load CPUs (bench/otlp_sink.py), with
    # the SDK's default batching (a batch every 5 s or 512 requests).
    sink_port=$((port + 100))
    mkdir -p "$OUT/tokenbyte-traced"
    setsid taskset -c "$LOAD_CPUS" .venv/bin/python bench/otlp_sink.py "$sink_port" \
        >"$OUT/tokenbyte-traced/otlp-sink.log" 2>&1 &
    pids+=($!)
    setsid taskset -c "$GW_CPUS" env "${TB_ENV[@]}" OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$sink_port" \
        .venv/bin/python manage.py serve --no-celery --port "$port" >"$OUT/tokenbyte-traced/server.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do curl -sf "127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
    curl -sf "127.0.0.1:$port/readyz" >/dev/null || { cat "$OUT/tokenbyte-traced/server.log"; exit 1; }
    tb_targets+=("tokenbyte-traced=http://127.0.0.1:$port/v1,$KEY,mock-gpt")
    port=$((port + 1))
fi
baseline_port= root=$PWD
if [ -n "${TB_BASELINE:-}" ]; then
    # Our venv, their code: a script's own directory comes first on sys.path.
    baseline_port=$port
    mkdir -p "$OUT/tokenbyte-baseline"
    git -C "$TB_BASELINE" log -1 --format='%h %s' >"$OUT/tokenbyte-baseline/commit.txt"
    (cd "$TB_BASELINE" && exec setsid taskset -c "$GW_CPUS" env "${TB_ENV[@]}" \
        "$root/.venv/bin/python" manage.py serve --no-celery --port "$port" \
        >"$OUT/tokenbyte-baseline/server.log" 2>&1) &
    pids+=($!)
    for _ in $(seq 100); do curl -sf "127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
    curl -sf "127.0.0.1:$port/readyz" >/dev/null || { cat "$OUT/tokenbyte-baseline/server.log"; exit 1; }
    tb_targets+=("tokenbyte-baseline=http://127.0.0.1:$port/v1,$KEY,mock-gpt")
    port=$((port + 1))
fi
for variant in ${TB_VARIANTS:-}; do
    name=tokenbyte-${variant%%=*} src=$(cd "${variant#*=}" && pwd)
    mkdir -p "$OUT/$name"
    git -C "$src" log -1 --format='%h %s' >"$OUT/$name/commit.txt"
    venv=("${TB_ENV[@]/#DATABASE_URL=*/DATABASE_URL=sqlite:///$OUT/$name/db.sqlite3}")
    vmanage() { (cd "$src" && env "${venv[@]}" "$root/.venv/bin/python" manage.py "$@"); }
    vmanage migrate --verbosity 0
    vmanage upstream add openai-compatible --name mock --api-key sk-mock-upstream --no-verify \
        --base-url "http://127.0.0.1:$MOCK_PORT/v1" >/dev/null
    vmanage catalog add mock-gpt --upstream mock --provider openai-compatible \
        --upstream-id mock-gpt --context-length 8192 --max-output-tokens 1024 \
        --input-price 0.15 --output-price 0.60 >/dev/null
    vkey=$(vmanage mintkey bench@example.com --name bench)
    vmanage credit bench@example.com 1000000 --note bench >/dev/null
    (cd "$src" && exec setsid taskset -c "$GW_CPUS" env "${venv[@]}" \
        "$root/.venv/bin/python" manage.py serve --no-celery --port "$port" \
        >"$OUT/$name/server.log" 2>&1) &
    pids+=($!)
    for _ in $(seq 100); do curl -sf "127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
    curl -sf "127.0.0.1:$port/readyz" >/dev/null || { cat "$OUT/$name/server.log"; exit 1; }
    tb_targets+=("$name=http://127.0.0.1:$port/v1,$vkey,mock-gpt")
    port=$((port + 1))
done

# TokenByte first in each scenario, LiteLLM last: the harness waits only for the target it is
# about to measure to go idle, and LiteLLM is still serving up to one request per connection
# after wrk stops (seconds at 128 connections). Measured next, the direct call (CPU 0) gives it
# that time; measured before TokenByte, it took TokenByte's CPU.
# shellcheck disable=SC2086  # TARGETS is a word list
"$SHARED/run.sh" "${tb_targets[@]}" $TARGETS

if [ "${TTFB_REQUESTS:-500}" -gt 0 ]; then
    setsid taskset -c "$LOAD_CPUS" bench/ttfb-mock.sh "$TTFB_PORT" "$OUT/ttfb-mock" >"$OUT/ttfb-mock.log" 2>&1 &
    pids+=($!)
    setsid taskset -c "$GW_CPUS" bench/relay-nginx.sh "$RELAY_PORT" "$TTFB_PORT" "$OUT/relay" \
        >"$OUT/relay.log" 2>&1 &
    pids+=($!)
    sleep 1
    taskset -c "$LOAD_CPUS" .venv/bin/python bench/ttfb.py "http://127.0.0.1:$TTFB_PORT/v1" \
        "http://127.0.0.1:$TB_PORT/v1" "$KEY" ttfb-gpt --count "${TTFB_REQUESTS:-500}" \
        --relay "http://127.0.0.1:$RELAY_PORT/v1" \
        ${baseline_port:+--baseline "http://127.0.0.1:$baseline_port/v1"} | tee "$OUT/ttfb.md"
fi
worker=$(ss -Hltnp "sport = :$TB_PORT" | grep -o 'pid=[0-9]*' | tail -1 | cut -d= -f2)
[ -z "$worker" ] || ps -o rss= -p "$worker" |
    awk '{printf "TokenByte RSS after the run: %.0f MB\n", $1 / 1024}' | tee -a "$OUT/ttfb.md"
echo "results: $OUT"
