#!/usr/bin/env bash
# Benchmarks the openai_chat adapter path: a fast Rust mock provider called directly, and the
# same chat request as a paid execution through `visa-cli serve` (production, durable ledger)
# in front of that mock, in the same run; and, as references, the same request through a bare
# proxy on the server's HTTP stack (bench/reference-proxy: no auth, no hold, no database) and
# through the same proxy doing the least durable work an exactly-once paid call could (a held
# row with the call's Idempotency-Key and a captured row in SQLite, group-committed, the capture
# fsynced before the answer): the gaps show what the two HTTP hops, two durable steps, and the
# rest of the money path each cost. Then the same call through the OpenAI-compatible surface
# (POST /v1/openai/chat/completions), non-streamed and streamed, and the streamed call's time to
# first byte against the mock's own (curl's time_starttransfer over sequential calls, p50 and
# p99). CPU per call by thread is printed for the floor's run and the OpenAI run.
# Usage: bench/chat.sh [seconds per run, default 15] [connections, default 32]; the floor and the
# non-streamed OpenAI path run $VISA_BENCH_ROUNDS (default 3) alternating slices of that length.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-15}
CONNECTIONS=${2:-32}
KEYS=${VISA_BENCH_KEY_COUNT:-32}
ROUNDS=${VISA_BENCH_ROUNDS:-3}
MOCK_PORT=18092
VISA_PORT=18093
PROXY_PORT=18094
FLOOR_PORT=18095
source bench/lib.sh
cargo build --release -q -p visa-cli -p visa-bench-mock-provider -p visa-bench-reference-proxy

target/release/visa-bench-mock-provider "127.0.0.1:$MOCK_PORT" 2>/dev/null & mock=$!; pids+=($mock)
target/release/visa-bench-reference-proxy "127.0.0.1:$PROXY_PORT" "http://127.0.0.1:$MOCK_PORT/v1" 2>/dev/null & pids+=($!)
target/release/visa-bench-reference-proxy "127.0.0.1:$FLOOR_PORT" "http://127.0.0.1:$MOCK_PORT/v1" "$work/floor.db" 2>/dev/null & floor_pid=$!; pids+=($floor_pid)
cat > "$work/tools.toml" <<TOML
[[tools]]
id = "bench-chat"
price_micros = 100
input_micros_per_mtok = 150000
output_micros_per_mtok = 600000
max_price_micros = 50000
timeout_ms = 10000
adapter = { type = "openai_chat", base_url = "http://127.0.0.1:$MOCK_PORT/v1", model = "bench-model", api_key_env = "VISA_BENCH_PROVIDER_KEY" }
TOML
export VISA_OPERATOR_TOKEN=bench-operator-token-0123456789 VISA_BENCH_PROVIDER_KEY=bench-provider-key
VISA_LOG=warn target/release/visa-cli serve --listen "127.0.0.1:$VISA_PORT" --data-dir "$work/data" --config "$work/tools.toml" & visa=$!; pids+=($visa)
wait_for_port "$MOCK_PORT"
wait_for_port "$VISA_PORT"
wait_for_port "$PROXY_PORT"
wait_for_port "$FLOOR_PORT"
api="http://127.0.0.1:$VISA_PORT"
create_keys "$api" "$KEYS" bench-chat

echo "machine: $(nproc) cores; ${DURATION}s per run, $CONNECTIONS connections, $KEYS keys"
direct=$(run_wrk bench/chat.lua "http://127.0.0.1:$MOCK_PORT" mock_direct)
echo "$direct"
reference=$(run_wrk bench/chat.lua "http://127.0.0.1:$PROXY_PORT" reference_proxy "$work/keys")
echo "$reference"
# The floor and the OpenAI surface alternate, $ROUNDS slices each, so that the shared machine's
# slow and fast moments fall on both alike (one pair of runs swung the ratio by ±5 points);
# each path's figures are summed over its slices, CPU per call by thread included (with the
# work each leaves behind, a checkpoint catching up, which is awaited before the next slice).
floor_slices=(); openai_slices=(); floor_ticks=""; visa_ticks=""; mock_ticks=""
for _ in $(seq "$ROUNDS"); do
  before=$(thread_ticks "$floor_pid")
  floor_slices+=("$(run_wrk bench/chat.lua "http://127.0.0.1:$FLOOR_PORT" durable_floor "$work/keys")")
  quiesce "$floor_pid"
  floor_ticks=$(ticks_since "$floor_ticks" "$before" "$(thread_ticks "$floor_pid")")
  before=$(thread_ticks "$visa"); mock_before=$(thread_ticks "$mock")
  openai_slices+=("$(run_wrk bench/openai.lua "$api" openai_chat "$work/keys")")
  quiesce "$visa"
  visa_ticks=$(ticks_since "$visa_ticks" "$before" "$(thread_ticks "$visa")")
  mock_ticks=$(ticks_since "$mock_ticks" "$mock_before" "$(thread_ticks "$mock")")
  awk -v n="${#floor_slices[@]}" -v f="$(field "${floor_slices[-1]}" req_per_s)" -v o="$(field "${openai_slices[-1]}" req_per_s)" \
    'BEGIN { printf "slice %d: durable_floor=%d openai_chat=%d (%.1f%%)\n", n, f, o, 100 * o / f }'
done
floor=$(combine durable_floor "${floor_slices[@]}")
openai=$(combine openai_chat "${openai_slices[@]}")
per_call() { cpu_per_call "$(echo "$1" | awk '{ print $1, 0 }')" "$1" "$2"; }
echo "$floor"
echo "durable_floor_cpu_per_call: $(per_call "$floor_ticks" "$(field "$floor" requests)")"
echo "$openai"
# CPU per call by thread, over the OpenAI slices: where a paid call's time goes.
echo "openai_chat_cpu_per_call visa: $(per_call "$visa_ticks" "$(field "$openai" requests)")"
echo "openai_chat_cpu_per_call mock: $(per_call "$mock_ticks" "$(field "$openai" requests)")"
# After the OpenAI run, so that it starts, as the floor's does, on an empty database (the
# random Idempotency-Key index costs more as it grows: bench/README.md, sustained load).
paid=$(run_wrk bench/chat.lua "$api" paid_chat "$work/keys")
echo "$paid"
openai_stream=$(VISA_BENCH_STREAM=1 run_wrk bench/openai.lua "$api" openai_stream "$work/keys")
echo "$openai_stream"

# Time to first byte of a streamed call, sequentially (no load): the mock directly, then
# through Visa Keys (which places the hold before it calls the mock).
ttfb() { # URL AUTH_HEADER_OR_EMPTY N
  for _ in $(seq "$3"); do
    curl -sS -o /dev/null -w '%{time_starttransfer}\n' "$1" -H 'Content-Type: application/json' ${2:+-H "$2"} \
      -H "Idempotency-Key: $(cat /proc/sys/kernel/random/uuid)" \
      -d '{"model":"bench-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":16,"stream":true}'
  done | sort -n | awk '{ v[NR] = $1 * 1000 } END { printf "p50_ms=%.2f p99_ms=%.2f", v[int(NR * 0.5)], v[int(NR * 0.99)] }'
}
first_key=$(head -1 "$work/keys")
ttfb_direct=$(ttfb "http://127.0.0.1:$MOCK_PORT/v1/chat/completions" "" 300)
ttfb_visa=$(ttfb "$api/v1/openai/chat/completions" "Authorization: Bearer $first_key" 300)
echo "ttfb_mock_direct $ttfb_direct"
echo "ttfb_openai_stream $ttfb_visa"
echo "ledger after the run: $(target/release/visa-cli ledger verify --data-dir "$work/data")"
awk -v d="$(field "$direct" req_per_s)" -v p="$(field "$paid" req_per_s)" -v r="$(field "$reference" req_per_s)" \
  -v f="$(field "$floor" req_per_s)" -v dp="$(field "$direct" p99_ms)" -v pp="$(field "$paid" p99_ms)" \
  'BEGIN { printf "paid/direct = %.1f%% (target >= 25%%); p99 over the mock = %.1f ms (target <= 20 ms); reference proxy/direct = %.1f%%; durable floor/direct = %.1f%%\n", 100*p/d, pp-dp, 100*r/d, 100*f/d }'
awk -v f="$(field "$floor" req_per_s)" -v o="$(field "$openai" req_per_s)" -v s="$(field "$openai_stream" req_per_s)" \
  -v dp="$(field "$direct" p99_ms)" -v op="$(field "$openai" p99_ms)" \
  -v td="$(field "$ttfb_direct" p50_ms)" -v tv="$(field "$ttfb_visa" p50_ms)" \
  'BEGIN { printf "openai/durable floor = %.1f%% (target >= 70%%); openai p99 over the mock = %.1f ms (target <= 20 ms); streamed/durable floor = %.1f%%; streamed time to first byte over the mock, p50 = %.2f ms (target <= 2 ms)\n", 100*o/f, op-dp, 100*s/f, tv-td }'
