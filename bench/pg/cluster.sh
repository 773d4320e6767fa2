# Sourced by bench/pg.sh after bench/lib.sh: a throwaway PostgreSQL cluster (initdb into
# $work/pg, a free port, stopped on exit) and the floor of a paid call on it (pgbench driving
# bench/pg/floor-call.sql, the least SQL one paid call must run).

command -v pg_ctl >/dev/null || ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 ||
  { apt-get update -qq && apt-get install -y -qq postgresql postgresql-contrib; }
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pg_dir="$work/pg"
pg_port=$(( 20000 + RANDOM % 20000 ))
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir -p "$pg_dir"; chmod 755 "$work" "$pg_dir"
[ "$(id -u)" = 0 ] && chown postgres "$pg_dir"
# The nodes stop before their database, which then goes with the work dir.
stop_pg() { stop_processes; as_pg "$pg_bin/pg_ctl" -D "$pg_dir/db" -m immediate stop >/dev/null 2>&1 || true; cleanup; }
trap stop_pg EXIT
as_pg "$pg_bin/initdb" -D "$pg_dir/db" -U postgres --auth=trust >/dev/null
as_pg "$pg_bin/pg_ctl" -D "$pg_dir/db" -l "$pg_dir/log" \
  -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=256MB ${VISA_PG_SETTINGS:-}" -w start >/dev/null
# ticks PID...: CPU time (user + system, with reaped children) of the processes, in clock ticks.
ticks() { for pid in "$@"; do cat "/proc/$pid/stat" 2>/dev/null || true; done | awk '{ s += $14 + $15 + $16 + $17 } END { print s + 0 }'; }
pg_pids() { local main; main=$(head -1 "$pg_dir/db/postmaster.pid"); echo "$main" $(ps -o pid= --ppid "$main"); }
pg_psql() { psql -X -h "$pg_dir" -p "$pg_port" -U postgres -v ON_ERROR_STOP=1 -q -c "SET client_min_messages = warning" "$@"; }
pg_psql -c "CREATE DATABASE floor" -c "CREATE DATABASE visa"
pg_url="postgres://postgres@127.0.0.1:$pg_port/visa?sslmode=disable"
echo "$("$pg_bin/postgres" --version), shared_buffers=256MB ${VISA_PG_SETTINGS:-}"

# run_floor ACCOUNTS CLIENTS LABEL [BATCH]: 64 keys on ACCOUNTS accounts, CLIENTS pgbench
# clients for $DURATION s, each running one paid call at a time (bench/pg/floor-call.sql, today's
# per-call SQL) or, with BATCH, batches of that many (bench/pg/floor-batch.sql, the money
# writer's set-based SQL; one account); prints "LABEL req_per_s=… mean_ms=…" like the wrk runs,
# in calls.
run_floor() {
  local batch=${4:-1} script=bench/pg/floor-call.sql
  [ -n "${4:-}" ] && script=bench/pg/floor-batch.sql
  pg_psql -d floor -c "DROP TABLE IF EXISTS accounts, key_spend, executions, idempotency_records, ledger CASCADE" >/dev/null
  pg_psql -d floor -f bench/pg/floor-schema.sql
  pg_psql -d floor -c "INSERT INTO accounts (id, balance_micros) SELECT g, 1000000000000000 FROM generate_series(1, $1) g"
  pg_psql -d floor -c "INSERT INTO key_spend (key_id, account_id, daily_cap_micros) SELECT g, 1 + (g - 1) % $1, 1000000000000000 FROM generate_series(1, 64) g"
  sync
  local before; before=$(ticks $(pg_pids))
  "$pg_bin/pgbench" -h "$pg_dir" -p "$pg_port" -U postgres -n -c "$2" -j 2 -T "$DURATION" -D accounts="$1" -D batch="$batch" \
    -f "$script" floor > "$work/pgbench.log" 2>&1 || { cat "$work/pgbench.log" >&2; exit 1; }
  awk -v label="$3" -v batch="$batch" -v cpu="$(( $(ticks $(pg_pids)) - before ))" -v hz="$(getconf CLK_TCK)" '
    /^tps/ { tps = $3 } /latency average/ { mean = $4 } /number of transactions actually processed/ { split($6, n, "/"); calls = n[1] * batch }
    END { printf "%s req_per_s=%.0f mean_ms=%s db_cpu_us_per_call=%.0f\n", label, tps * batch, mean, cpu / hz * 1e6 / calls }' "$work/pgbench.log"
}
