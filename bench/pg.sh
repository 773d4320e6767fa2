#!/usr/bin/env bash
# Benchmarks paid calls on PostgreSQL against the floor of that database, in one run, on a
# throwaway cluster (bench/pg/cluster.sh):
#   1. floor — pgbench running only the SQL one paid call needs (bench/pg/floor-call.sql), with
#      as many clients as wrk has connections, then with one node's pool size; and the floor of
#      the batched design (bench/pg/floor-batch.sql: the money writer's set-based SQL);
#   2. paid echo through 1 node (`visa-cli serve --database`), 64 keys on one account, then the
#      same load over 64 accounts of one key each;
#   3. the same load split over 2 nodes on the same database (two wrk, half the connections each),
#      with the pool of 1. split between them, then with a whole pool each; and, as the ceiling
#      of any design that keeps nodes off each other's rows (escrow), each node an account of
#      its own;
#   4. a hot key: all the load of 3. on one key;
#   5. the same load as 2. on the embedded SQLite default, for comparison.
# It prints the database's and the nodes' CPU time per call (from /proc), ends with
# `ledger verify` on both databases, and the ratios to the issue's targets.
# Usage: bench/pg.sh [seconds per run, default 15] [connections, default 64]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-15}
CONNECTIONS=${2:-64}
POOL=${VISA_DATABASE_POOL_SIZE:-16}
source bench/lib.sh
source bench/pg/cluster.sh
cargo build --release -q -p visa-cli
export VISA_OPERATOR_TOKEN=bench-operator-token-0123456789 VISA_LOG=warn VISA_DATABASE_POOL_SIZE=$POOL

hz=$(getconf CLK_TCK)

# measure LABEL KEYS_FILE PORT...: wrk with $CONNECTIONS connections split over the ports (a
# `%p` in KEYS_FILE is each port: its own keys).
measure() {
  local label=$1 keys=$2; shift 2
  local share=$(( CONNECTIONS / $# )) db_before nodes_before port out=()
  sync
  db_before=$(ticks $(pg_pids)); nodes_before=$(ticks "${node_pids[@]}")
  for port in "$@"; do
    VISA_BENCH_KEYS="${keys//%p/$port}" wrk -t2 -c"$share" -d"${DURATION}s" --timeout 10s -s bench/execute.lua "http://127.0.0.1:$port" \
      > "$work/wrk.$port" & out+=($!)
  done
  wait "${out[@]}"
  local db_after nodes_after
  db_after=$(ticks $(pg_pids)); nodes_after=$(ticks "${node_pids[@]}")
  for port in "$@"; do grep RESULT "$work/wrk.$port"; done | awk -v label="$label" \
    -v db="$db_before $db_after" -v nodes="$nodes_before $nodes_after" -v hz="$hz" '
    { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      rps += v["req_per_s"]; n += v["requests"]; bad += v["non_2xx_or_errors"]
      if (v["p99_ms"] > p99) p99 = v["p99_ms"]; if (v["p50_ms"] > p50) p50 = v["p50_ms"] }
    END { split(db, d, " "); split(nodes, s, " ")
      printf "%s req_per_s=%.0f p50_ms=%.2f p99_ms=%.2f requests=%d non_2xx_or_errors=%d db_cpu_us_per_call=%.0f node_cpu_us_per_call=%.0f\n",
        label, rps, p50, p99, n, bad, (d[2] - d[1]) / hz * 1e6 / n, (s[2] - s[1]) / hz * 1e6 / n }'
}

echo "machine: $(nproc) cores; ${DURATION}s per run, $CONNECTIONS connections, a pool of $POOL connections per node unless said"
floor=$(run_floor 1 "$CONNECTIONS" "floor_${CONNECTIONS}_clients"); echo "$floor"
floor_pool=$(run_floor 1 "$POOL" "floor_${POOL}_clients"); echo "$floor_pool"
echo "$(run_floor 64 "$CONNECTIONS" "floor_${CONNECTIONS}_clients_64_accounts")"
# The floor of the batched design: the money writer's set-based SQL (bench/pg/floor-batch.sql),
# 32 calls a batch, with one client (one node's writer for one account) and with two (two nodes).
floor_batched=$(run_floor 1 1 floor_batched_1_client_batch_32 32); echo "$floor_batched"
echo "$(run_floor 1 2 floor_batched_2_clients_batch_32 32)"

A=18101; B=18102
# start_nodes POOL PORT...: one `visa-cli serve` per port on the database, POOL connections each.
start_nodes() {
  local pool=$1 port; shift
  node_pids=()
  for port in "$@"; do
    VISA_DATABASE_POOL_SIZE=$pool target/release/visa-cli serve --listen "127.0.0.1:$port" --data-dir "$work/node-$port" \
      --database "$pg_url" & pids+=($!); node_pids+=($!)
    wait_for_port "$port"
  done
}
stop_nodes() { for pid in "${node_pids[@]}"; do kill "$pid"; wait "$pid" 2>/dev/null || true; done; }
start_nodes "$POOL" "$A"
create_keys "http://127.0.0.1:$A" 64 echo
mv "$work/keys" "$work/pg-keys"; head -1 "$work/pg-keys" > "$work/hot-key"
one=$(measure pg_1_node "$work/pg-keys" "$A"); echo "$one"
# The same load over 64 accounts (one key each): one busy account against many.
create_account_keys "http://127.0.0.1:$A" 64 echo
spread=$(measure pg_1_node_64_accounts "$work/keys" "$A"); echo "$spread"
rm -f "$work/keys"
stop_nodes
# The same connection budget as one node (the database's throughput falls with more
# connections on these cores: compare the floor at 64 and at 16 clients), then POOL each.
start_nodes $(( POOL / 2 )) "$A" "$B"
two=$(measure "pg_2_nodes_pool_$(( POOL / 2 ))_each" "$work/pg-keys" "$A" "$B"); echo "$two"
hot=$(measure "pg_2_nodes_pool_$(( POOL / 2 ))_each_hot_key" "$work/hot-key" "$A" "$B"); echo "$hot"
# The ceiling of any design that keeps two nodes off each other's rows (escrow at its best): each
# node its own account of 64 keys, so no row is shared.
for port in "$A" "$B"; do create_keys "http://127.0.0.1:$port" 64 echo "bench-$port"; mv "$work/keys" "$work/own-keys-$port"; done
apart=$(measure "pg_2_nodes_pool_$(( POOL / 2 ))_each_no_shared_row" "$work/own-keys-%p" "$A" "$B"); echo "$apart"
stop_nodes
start_nodes "$POOL" "$A" "$B"
echo "$(measure "pg_2_nodes_pool_${POOL}_each" "$work/pg-keys" "$A" "$B")"
echo "PostgreSQL ledger after the runs: $(target/release/visa-cli ledger verify --database "$pg_url")"
stop_nodes

S=18103
target/release/visa-cli serve --listen "127.0.0.1:$S" --data-dir "$work/sqlite" & pids+=($!); node_pids=($!)
wait_for_port "$S"
create_keys "http://127.0.0.1:$S" 64 echo
sqlite=$(measure sqlite_1_node "$work/keys" "$S"); echo "$sqlite"
echo "SQLite ledger after the run: $(target/release/visa-cli ledger verify --data-dir "$work/sqlite")"

awk -v f="$(field "$floor" req_per_s)" -v fb="$(field "$floor_batched" req_per_s)" -v o="$(field "$one" req_per_s)" \
  -v s="$(field "$sqlite" req_per_s)" -v sp="$(field "$spread" req_per_s)" \
  -v t="$(field "$two" req_per_s)" -v ap="$(field "$apart" req_per_s)" -v h="$(field "$hot" req_per_s)" -v p="$(field "$one" p99_ms)" -v p2="$(field "$two" p99_ms)" \
  -v dbc="$(field "$one" db_cpu_us_per_call)" -v nc="$(field "$one" node_cpu_us_per_call)" -v snc="$(field "$sqlite" node_cpu_us_per_call)" 'BEGIN {
  printf "1 PostgreSQL node / 1 SQLite node = %.0f%% (target >= 50%%)\n", 100*o/s
  printf "1 node / per-call floor(%d clients) = %.0f%%, / batched floor(1 client) = %.0f%%\n", '"$CONNECTIONS"', 100*o/f, 100*o/fb
  printf "PostgreSQL CPU per paid call = %.0f us (target <= 150 us); node CPU per call = %.0f us = %.2fx SQLite node (target <= 2x)\n", dbc, nc, nc/snc
  printf "one account / 64 accounts = %.0f%% (target >= 85%%)\n", 100*o/sp
  printf "2 nodes / 1 node = %.0f%% (target >= 100%%); 2 nodes sharing no row / 1 node = %.0f%% (the ceiling of escrow here)\n", 100*t/o, 100*ap/o
  printf "hot key / spread keys = %.0f%%\n", 100*h/t
  printf "p99 at %d connections: 1 node %.1f ms, 2 nodes %.1f ms (target <= 25 ms)\n", '"$CONNECTIONS"', p, p2 }'
