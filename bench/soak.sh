#!/usr/bin/env bash
# Sustained load: does the paid path hold its 10-second figures for minutes?
#   1. a 10 s reference run of paid echo (the figure `bench/run.sh` reports);
#   2. then paid echo without a pause for MINUTES, reported per 30 s window as it runs:
#      req/s, p50, p99, errors, the server's RSS, the database and WAL sizes, and the
#      writer's mean WAL fsync, transaction time, jobs per transaction and the time a
#      finishing checkpoint held it (from /metrics);
#   3. a summary against the targets (p99 <= 25 ms in every window, every window's throughput
#      within 15% of the reference, RSS flat after the first two windows) and `ledger verify`.
# Usage: bench/soak.sh [minutes, default 10] [connections, default 64]
#   4. then the same soak against the durable floor (bench/reference-proxy with a database: the
#      least an exactly-once money path writes per call — a hold, a capture with the stored
#      answer, and the call's Idempotency-Key) on a fresh database of its own: how much of the
#      slowdown as the database grows is the floor's own. VISA_SOAK_FLOOR=0 skips it.
# VISA_SOAK_IDEMPOTENCY_TTL (default 24h) is the server's --idempotency-ttl: set it to a few
# minutes to see retention hold the database's size within a soak.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-10}
CONNECTIONS=${2:-64}
WINDOW=30
KEYS=${VISA_BENCH_KEY_COUNT:-64}
PORT=18093
source bench/lib.sh
cargo build --release -q -p visa-cli -p visa-bench-reference-proxy

export VISA_OPERATOR_TOKEN=bench-operator-token-0123456789
VISA_LOG=warn target/release/visa-cli serve --listen "127.0.0.1:$PORT" --data-dir "$work/data" \
  --idempotency-ttl "${VISA_SOAK_IDEMPOTENCY_TTL:-24h}" & server=$!; pids+=($server)
wait_for_port "$PORT"
api="http://127.0.0.1:$PORT"
create_keys "$api" "$KEYS" echo

echo "machine: $(nproc) cores; $CONNECTIONS connections, $KEYS keys, ${MINUTES} min in ${WINDOW} s windows"
DURATION=10
reference=$(run_wrk bench/execute.lua "$api" reference_10s "$work/keys")
echo "$reference"
ref_rps=$(field "$reference" req_per_s)

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$server/status"; }
# metric NAME: one value from the server's /metrics (the operator token reads it).
metrics() { curl -fsS "$api/metrics" -H "Authorization: Bearer $VISA_OPERATOR_TOKEN"; }
metric() { echo "$1" | awk -v n="$2" '$1 == n { print $2 }'; }
# mean BEFORE AFTER HISTOGRAM SCALE: the histogram's mean over the window, times SCALE.
mean() {
  awk -v s0="$(metric "$1" "$3_sum")" -v s1="$(metric "$2" "$3_sum")" -v c0="$(metric "$1" "$3_count")" \
    -v c1="$(metric "$2" "$3_count")" -v k="$4" 'BEGIN { printf "%.2f", (c1 > c0) ? k * (s1 - s0) / (c1 - c0) : 0 }'
}
size_mb() { if [ -f "$1" ]; then awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.1f", b / 1048576 }'; else echo 0; fi; }

windows=$(( MINUTES * 60 / WINDOW ))
worst_p99=0; worst_ratio=1000; rss_after_warmup=0; rss_last=0; total=0
printf "%-6s %9s %8s %8s %7s %8s %9s %8s %9s %7s %5s %8s\n" window req/s p50_ms p99_ms errors rss_mb db_mb wal_mb fsync_ms txn_ms jobs held_ms
before=$(metrics)
for i in $(seq "$windows"); do
  line=$(VISA_BENCH_KEYS="$work/keys" wrk -t2 -c"$CONNECTIONS" -d"${WINDOW}s" --timeout 10s -s bench/execute.lua "$api" | grep RESULT)
  rps=$(field "$line" req_per_s); p50=$(field "$line" p50_ms); p99=$(field "$line" p99_ms)
  errors=$(field "$line" non_2xx_or_errors); total=$(( total + $(field "$line" requests) ))
  rss=$(rss_kb)
  after=$(metrics)
  # The writer over the window: mean WAL fsync, mean transaction (BEGIN to COMMIT), jobs per transaction.
  fsync_ms=$(mean "$before" "$after" visa_store_fsync_seconds 1000)
  txn_ms=$(mean "$before" "$after" visa_store_transaction_seconds 1000)
  jobs=$(mean "$before" "$after" visa_store_jobs_per_transaction 1)
  held_ms=$(mean "$before" "$after" visa_store_checkpoint_writer_held_seconds 1000)
  before=$after
  printf "%-6s %9s %8s %8s %7s %8.1f %9s %8s %9s %7s %5s %8s\n" "$i" "$rps" "$p50" "$p99" "$errors" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" \
    "$(size_mb "$work/data/visa.db")" "$(size_mb "$work/data/visa.db-wal")" "$fsync_ms" "$txn_ms" "$jobs" "$held_ms"
  worst_p99=$(awk -v a="$worst_p99" -v b="$p99" 'BEGIN { print (b > a) ? b : a }')
  worst_ratio=$(awk -v a="$worst_ratio" -v r="$rps" -v f="$ref_rps" 'BEGIN { x = 100 * r / f; print (x < a) ? x : a }')
  [ "$i" -eq 2 ] && rss_after_warmup=$rss
  rss_last=$rss
done
echo "paid calls in the soak: $total; database $(size_mb "$work/data/visa.db") MB ($(awk -v b="$(stat -c %s "$work/data/visa.db")" -v n="$total" 'BEGIN { printf "%.0f", b / n }') bytes per call)"
echo "worst window p99: ${worst_p99} ms (target <= 25); slowest window: ${worst_ratio}% of the 10 s reference (target >= 85%)"
echo "RSS after warm-up (window 2): $(( rss_after_warmup / 1024 )) MB, at the end: $(( rss_last / 1024 )) MB"
kill -TERM "$server"; wait "$server" 2>/dev/null || true
echo "ledger after the soak: $(target/release/visa-cli ledger verify --data-dir "$work/data")"

[ "${VISA_SOAK_FLOOR:-1}" = 0 ] && exit 0
FLOOR_PORT=18095
target/release/visa-bench-reference-proxy "127.0.0.1:$FLOOR_PORT" "http://127.0.0.1:1/v1" "$work/floor.db" 2>/dev/null & pids+=($!)
wait_for_port "$FLOOR_PORT"
floor="http://127.0.0.1:$FLOOR_PORT"
echo "floor-key" > "$work/floor-keys"
floor_reference=$(run_wrk bench/execute.lua "$floor" floor_reference_10s "$work/floor-keys")
echo "$floor_reference"
floor_ref_rps=$(field "$floor_reference" req_per_s)
floor_worst=1000
printf "%-6s %9s %8s %8s %7s %9s\n" floor req/s p50_ms p99_ms errors db_mb
for i in $(seq "$windows"); do
  line=$(VISA_BENCH_KEYS="$work/floor-keys" wrk -t2 -c"$CONNECTIONS" -d"${WINDOW}s" --timeout 10s -s bench/execute.lua "$floor" | grep RESULT)
  rps=$(field "$line" req_per_s)
  printf "%-6s %9s %8s %8s %7s %9s\n" "$i" "$rps" "$(field "$line" p50_ms)" "$(field "$line" p99_ms)" \
    "$(field "$line" non_2xx_or_errors)" "$(size_mb "$work/floor.db")"
  floor_worst=$(awk -v a="$floor_worst" -v r="$rps" -v f="$floor_ref_rps" 'BEGIN { x = 100 * r / f; print (x < a) ? x : a }')
done
echo "durable floor: slowest window ${floor_worst}% of its own 10 s reference; Visa Keys: ${worst_ratio}% of its own"
