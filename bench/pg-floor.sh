#!/usr/bin/env bash
# The PostgreSQL floor for a paid call (issue 15's reference): pgbench driving only the SQL a
# paid call must run — the conditional hold with its Idempotency-Key row, then the capture, two
# transactions with synchronous_commit on — on a throwaway cluster (initdb into a temp dir, a
# free port), with every key on one account (as bench/run.sh) and spread over 64 accounts.
# Usage: bench/pg-floor.sh [seconds, default 20] [clients, default 64]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-20}
CLIENTS=${2:-64}
command -v pg_ctlcluster >/dev/null || { apt-get update -qq && apt-get install -y -qq postgresql postgresql-contrib; }
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
work=$(mktemp -d); chmod 755 "$work"
port=$(( 20000 + RANDOM % 20000 ))
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$work"
cleanup() { as_pg "$bin/pg_ctl" -D "$work/db" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
as_pg "$bin/initdb" -D "$work/db" -U postgres --auth=trust >/dev/null
as_pg "$bin/pg_ctl" -D "$work/db" -l "$work/log" -o "-p $port -k $work -c max_connections=200 -c shared_buffers=256MB ${VISA_PG_SETTINGS:-}" -w start >/dev/null
psql() { command psql -X -h "$work" -p "$port" -U postgres -v ON_ERROR_STOP=1 -q -c "SET client_min_messages = warning" "$@"; }
echo "machine: $(nproc) cores; $CLIENTS clients, ${SECONDS_PER_RUN} s per run; $("$bin/postgres" --version)"
for accounts in 1 64; do
  psql -c "DROP TABLE IF EXISTS accounts, key_spend, executions, idempotency_records, ledger CASCADE" >/dev/null
  psql -f bench/pg/floor-schema.sql
  psql -c "INSERT INTO accounts (id, balance_micros) SELECT g, 1000000000000000 FROM generate_series(1, $accounts) g"
  psql -c "INSERT INTO key_spend (key_id, account_id, daily_cap_micros) SELECT g, 1 + (g - 1) % $accounts, 1000000000000000 FROM generate_series(1, 64) g"
  result=$("$bin/pgbench" -h "$work" -p "$port" -U postgres -n -c "$CLIENTS" -j 2 -T "$SECONDS_PER_RUN" -D accounts="$accounts" \
    -f bench/pg/floor-call.sql -r postgres 2>&1 | tee "$work/pgbench.log" | grep -E "^tps|latency average|latency stddev" || { cat "$work/pgbench.log" >&2; exit 1; })
  tps=$(echo "$result" | awk '/^tps/ { printf "%.0f", $3 }')
  latency=$(echo "$result" | awk '/latency average/ { print $4 }')
  echo "floor, 64 keys on $accounts account(s): $tps paid calls/s, mean latency $latency ms per call"
done
