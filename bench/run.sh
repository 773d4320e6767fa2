#!/usr/bin/env bash
# Benchmarks the paid execution path against the machine's own ceiling, in one run:
#   1. bench/baseline — bare axum answering a JSON echo (no auth, no database);
#   2. visa-cli serve (production, SQLite synchronous=FULL) — paid `echo`, a fresh
#      Idempotency-Key per request, spread over many keys with high caps and rate limits;
#   3. the same server rejecting a well-formed but unknown key (401).
# Usage: bench/run.sh [seconds per run, default 15] [connections, default 64]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-15}
CONNECTIONS=${2:-64}
KEYS=${VISA_BENCH_KEY_COUNT:-64}
BASE_PORT=18090
VISA_PORT=18091

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -q -p visa-cli -p visa-bench-baseline

work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

wait_for_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing listens on $1" >&2; exit 1; }
# run_wrk URL LABEL [KEYS_FILE]; flushes dirty pages first so one run's writeback does not
# land in the next run's measurement.
run_wrk() {
  sync
  VISA_BENCH_KEYS="${3:-}" wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s -s bench/execute.lua "$1" \
    | grep RESULT | sed "s/^RESULT/$2/"
}

target/release/visa-bench-baseline "127.0.0.1:$BASE_PORT" 2>/dev/null & pids+=($!)
export VISA_OPERATOR_TOKEN=bench-operator-token
VISA_LOG=warn target/release/visa-cli serve --listen "127.0.0.1:$VISA_PORT" --data-dir "$work/data" & pids+=($!)
wait_for_port "$VISA_PORT"

api="http://127.0.0.1:$VISA_PORT"
session=$(curl -fsS "$api/v1/operator/accounts" -H "Authorization: Bearer $VISA_OPERATOR_TOKEN" -H 'Content-Type: application/json' \
  -d '{"login":"bench","approved":true,"credit_cents":1000000000}' | sed -E 's/.*"session_token":"([^"]+)".*/\1/')
for _ in $(seq "$KEYS"); do
  curl -fsS "$api/v1/api/keys" -H "Authorization: Bearer $session" -H 'Content-Type: application/json' \
    -d '{"label":"bench","allowed_tools":["echo"],"daily_cap_cents":100000000,"rate_limit_per_second":100000}' \
    | sed -E 's/.*"key":"([^"]+)".*/\1\n/' >> "$work/keys"
done

echo "machine: $(nproc) cores; ${DURATION}s per run, $CONNECTIONS connections, $KEYS keys"
wait_for_port "$BASE_PORT"
baseline=$(run_wrk "http://127.0.0.1:$BASE_PORT" "baseline_echo")
echo "$baseline"
paid=$(run_wrk "$api" "paid_echo" "$work/keys")
echo "$paid"
rejected=$(run_wrk "$api" "rejected_401")
echo "$rejected"

verify=$(target/release/visa-cli ledger verify --data-dir "$work/data")
echo "ledger after the run: $verify"
rate() { echo "$1" | sed -E 's/.*req_per_s=([0-9]+).*/\1/'; }
awk -v b="$(rate "$baseline")" -v p="$(rate "$paid")" -v r="$(rate "$rejected")" \
  'BEGIN { printf "paid/baseline = %.1f%% (target >= 20%%); rejected/baseline = %.1f%% (target >= 60%%)\n", 100*p/b, 100*r/b }'
