#!/usr/bin/env bash
# Benchmarks a paid call over MCP against the same call over execute, in one run on one server
# (production, durable SQLite): `POST /v1/api/tools/echo/execute` (bench/execute.lua), then an
# MCP `tools/call` of `echo` (bench/mcp.lua: the 2026-07-28 revision, no session, a fresh
# Idempotency-Key in `_meta` per call), each spread over the same keys. Ends with `ledger verify`.
# Two more runs measure what MCP itself costs a request, without the money path: an MCP
# `tools/list` (bench/mcp-list.lua: our key check and rmcp) against execute's cheapest answer,
# a well-formed key whose checksum fails (401, no database read). Their difference in time per
# request is added to execute's to give the most MCP can do on this machine with this SDK. The last
# two runs make that exact: a whole `tools/call` of a tool that does not exist (bench/mcp-unknown.lua:
# the same size as the paid call, the same key check, refused before any money moves) against the
# same refusal on execute (`POST /v1/api/tools/ecko/execute`). Both do identical work but for the
# surface, so their difference is what MCP over rmcp adds to a call; added to execute's paid call it
# gives the most a paid call over MCP can do (the floor). Each run also reports the server's CPU
# time per request (from /proc), steadier than calls/s on shared cores.
# Usage: bench/mcp.sh [seconds per run, default 15] [connections, default 64]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-15}
CONNECTIONS=${2:-64}
KEYS=${VISA_BENCH_KEY_COUNT:-64}
VISA_PORT=18092
source bench/lib.sh
cargo build --release -q -p visa-cli

export VISA_OPERATOR_TOKEN=bench-operator-token-0123456789
VISA_LOG=warn target/release/visa-cli serve --listen "127.0.0.1:$VISA_PORT" --data-dir "$work/data" & pids+=($!)
server=$!
wait_for_port "$VISA_PORT"

# measure SCRIPT LABEL [KEYS_FILE]: run_wrk's line plus the server's CPU time per request.
measure() {
  local before after out
  quiesce "$server"
  before=$(awk '{ print $14 + $15 }' "/proc/$server/stat")
  out=$(run_wrk "$1" "$api" "$2" "${3:-}")
  after=$(awk '{ print $14 + $15 }' "/proc/$server/stat")
  awk -v b="$before" -v a="$after" -v n="$(field "$out" requests)" -v hz="$(getconf CLK_TCK)" -v out="$out" \
    'BEGIN { printf "%s server_cpu_us=%.1f\n", out, (a - b) * 1e6 / hz / n }'
}
api="http://127.0.0.1:$VISA_PORT"
create_keys "$api" "$KEYS" echo

echo "machine: $(nproc) cores; ${DURATION}s per run, $CONNECTIONS connections, $KEYS keys"
execute=$(measure bench/execute.lua execute_echo "$work/keys")
echo "$execute"
mcp=$(measure bench/mcp.lua mcp_echo "$work/keys")
echo "$mcp"
list=$(measure bench/mcp-list.lua mcp_tools_list "$work/keys")
echo "$list"
refused=$(measure bench/execute.lua execute_refused_401)
echo "$refused"
unknown=$(measure bench/mcp-unknown.lua mcp_unknown_tool "$work/keys")
echo "$unknown"
unknown_execute=$(VISA_BENCH_TOOL=ecko measure bench/execute.lua execute_unknown_tool "$work/keys")
echo "$unknown_execute"
echo "ledger after the run: $(target/release/visa-cli ledger verify --data-dir "$work/data")"
awk -v e="$(field "$execute" req_per_s)" -v m="$(field "$mcp" req_per_s)" \
  -v l="$(field "$list" req_per_s)" -v r="$(field "$refused" req_per_s)" \
  -v ec="$(field "$execute" server_cpu_us)" -v mc="$(field "$mcp" server_cpu_us)" \
  -v lc="$(field "$list" server_cpu_us)" -v rc="$(field "$refused" server_cpu_us)" \
  -v u="$(field "$unknown" req_per_s)" -v uc="$(field "$unknown" server_cpu_us)" \
  -v x="$(field "$unknown_execute" req_per_s)" -v xc="$(field "$unknown_execute" server_cpu_us)" '
  # The most a paid call over MCP does if MCP adds `cost` µs to each of execute'"'"'s calls.
  function bound_of(cost) { return 1e6/(1e6/e + cost) }
  BEGIN {
    mcp_cost = 1e6/l - 1e6/r; bound = bound_of(mcp_cost)
    call_cost = 1e6/u - 1e6/x; call_bound = bound_of(call_cost)
    printf "mcp/execute = %.1f%% (target >= 70%%)\n", 100*m/e
    printf "MCP costs %.0f us a request more than execute'"'"'s cheapest answer: at most %.0f calls/s = %.1f%% of execute; mcp at %.1f%% of that bound\n", mcp_cost, bound, 100*bound/e, 100*m/bound
    printf "an unknown tool refused over MCP costs %.0f us more than on execute: a paid call over MCP does at most %.0f calls/s = %.1f%% of execute (the floor); mcp at %.1f%% of it\n", call_cost, call_bound, 100*call_bound/e, 100*m/call_bound
    printf "server CPU per request: execute %.0f us, mcp %.0f us (%.2fx); MCP itself (tools/list %.0f - 401 %.0f) %.0f us; an unknown tool over MCP %.0f us, over execute %.0f us; execute + their difference %.0f us\n", ec, mc, mc/ec, lc, rc, lc - rc, uc, xc, ec + uc - xc
  }'
