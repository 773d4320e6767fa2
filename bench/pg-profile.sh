#!/usr/bin/env bash
# What the database does per paid call: one node on a throwaway PostgreSQL cluster with
# pg_stat_statements, paid echo calls through wrk, then every statement the node ran with its
# calls and time per paid call (the statements worth cutting first), and the transactions per call.
# Usage: bench/pg-profile.sh [seconds, default 10] [connections, default 64] [accounts: 1 (64 keys
# on one account, the default) or 64 (one key each)]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNECTIONS=${2:-64}
ACCOUNTS=${3:-1}
source bench/lib.sh
plans=""
[ -n "${VISA_PROFILE_PLANS:-}" ] && plans=",auto_explain -c auto_explain.log_min_duration=5ms -c auto_explain.log_analyze=on -c auto_explain.log_nested_statements=on"
VISA_PG_SETTINGS="-c shared_preload_libraries=pg_stat_statements$plans -c pg_stat_statements.track=all ${VISA_PG_SETTINGS:-}"
source bench/pg/cluster.sh
cargo build --release -q -p visa-cli
export VISA_OPERATOR_TOKEN=bench-operator-token-0123456789 VISA_LOG=warn
pg_psql -d visa -c "CREATE EXTENSION pg_stat_statements"
port=18111
target/release/visa-cli serve --listen "127.0.0.1:$port" --data-dir "$work/node" --database "$pg_url" & pids+=($!)
wait_for_port "$port"
if [ "$ACCOUNTS" = 1 ]; then create_keys "http://127.0.0.1:$port" 64 echo; else create_account_keys "http://127.0.0.1:$port" "$ACCOUNTS" echo; fi
pg_psql -d visa -c "SELECT pg_stat_statements_reset()" >/dev/null
xacts() { pg_psql -d visa -At -c "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'visa'"; }
before=$(xacts)
result=$(run_wrk bench/execute.lua "http://127.0.0.1:$port" paid "$work/keys")
echo "$result"
calls=$(field "$result" requests)
echo "transactions per paid call: $(awk -v a="$before" -v b="$(xacts)" -v n="$calls" 'BEGIN { printf "%.2f", (b - a) / n }')"
pg_psql -d visa -P pager=off -c "
  SELECT round(calls::numeric / $calls, 3) AS per_call, round((total_exec_time * 1000 / $calls)::numeric, 1) AS exec_us_per_call,
         round((total_exec_time * 1000 / calls)::numeric, 1) AS us_each, left(regexp_replace(query, '\s+', ' ', 'g'), 110) AS statement
  FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'visa')
  ORDER BY total_exec_time DESC LIMIT 25"
# VISA_PROFILE_PLANS=1: also the plan, with actual times, of each statement that ran 5 ms or more
# (auto_explain), the first 150 lines.
if [ -n "${VISA_PROFILE_PLANS:-}" ]; then grep -v "^\s*$" "$pg_dir/log" | grep -A80 "duration:" | head -240; fi
