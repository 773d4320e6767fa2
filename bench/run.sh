#!/usr/bin/env bash
# Benchmarks the paid execution path against the machine's own ceiling, in one run:
#   1. bench/baseline — bare axum answering a JSON echo (no auth, no database);
#   2. visa-cli serve (production, durable SQLite) — paid `echo`, a fresh Idempotency-Key per
#      request, spread over many keys with high caps and rate limits;
#   3. the same server rejecting a well-formed key whose checksum fails (401).
# Usage: bench/run.sh [seconds per run, default 15] [connections, default 64]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-15}
CONNECTIONS=${2:-64}
KEYS=${VISA_BENCH_KEY_COUNT:-64}
BASE_PORT=18090
VISA_PORT=18091
source bench/lib.sh
cargo build --release -q -p visa-cli -p visa-bench-baseline

target/release/visa-bench-baseline "127.0.0.1:$BASE_PORT" 2>/dev/null & pids+=($!)
export VISA_OPERATOR_TOKEN=bench-operator-token-0123456789
VISA_LOG=warn target/release/visa-cli serve --listen "127.0.0.1:$VISA_PORT" --data-dir "$work/data" & pids+=($!)
wait_for_port "$BASE_PORT"
wait_for_port "$VISA_PORT"
api="http://127.0.0.1:$VISA_PORT"
create_keys "$api" "$KEYS" echo

echo "machine: $(nproc) cores; ${DURATION}s per run, $CONNECTIONS connections, $KEYS keys"
baseline=$(run_wrk bench/execute.lua "http://127.0.0.1:$BASE_PORT" baseline_echo)
echo "$baseline"
paid=$(run_wrk bench/execute.lua "$api" paid_echo "$work/keys")
echo "$paid"
rejected=$(run_wrk bench/execute.lua "$api" rejected_401)
echo "$rejected"
echo "ledger after the run: $(target/release/visa-cli ledger verify --data-dir "$work/data")"
awk -v b="$(field "$baseline" req_per_s)" -v p="$(field "$paid" req_per_s)" -v r="$(field "$rejected" req_per_s)" \
  'BEGIN { printf "paid/baseline = %.1f%% (target >= 20%%); rejected/baseline = %.1f%% (target >= 60%%)\n", 100*p/b, 100*r/b }'
