# Shared by the bench scripts (sourced from the repository root): process cleanup, waiting for
# a port, running wrk with a Lua script, and creating a funded account with N capped keys.

pids=()
work=$(mktemp -d)
stop_processes() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done; }
cleanup() { stop_processes; rm -rf "$work"; }
trap cleanup EXIT

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }

wait_for_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing listens on $1" >&2; exit 1; }

# run_wrk SCRIPT URL LABEL [KEYS_FILE]; flushes dirty pages first so one run's writeback does
# not land in the next run's measurement.
run_wrk() {
  sync
  VISA_BENCH_KEYS="${4:-}" wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s -s "$1" "$2" \
    | grep RESULT | sed "s/^RESULT/$3/"
}

# create_keys API COUNT TOOL [LOGIN]: an approved account (LOGIN, default bench) with $10M and
# COUNT keys for TOOL (caps and rate limits high enough to measure the money path, not the
# limiter), one per line in $work/keys; the account's session token in $work/session.
create_keys() {
  local session
  session=$(curl -fsS "$1/v1/operator/accounts" -H "Authorization: Bearer $VISA_OPERATOR_TOKEN" -H 'Content-Type: application/json' \
    -d "{\"login\":\"${4:-bench}\",\"approved\":true,\"credit_cents\":1000000000}" | sed -E 's/.*"session_token":"([^"]+)".*/\1/')
  echo "$session" > "$work/session"
  for _ in $(seq "$2"); do
    curl -fsS "$1/v1/api/keys" -H "Authorization: Bearer $session" -H 'Content-Type: application/json' \
      -d "{\"label\":\"bench\",\"allowed_tools\":[\"$3\"],\"daily_cap_cents\":100000000,\"rate_limit_per_second\":100000}" \
      | sed -E 's/.*"key":"([^"]+)".*/\1\n/' >> "$work/keys"
  done
}

# create_account_keys API COUNT TOOL: COUNT approved accounts with $10M each and one key for TOOL
# apiece (as create_keys), one key per line in $work/keys.
create_account_keys() {
  local n
  for n in $(seq "$2"); do create_keys "$1" 1 "$3" "bench-$n"; done
}

field() { echo "$1" | sed -E "s/.*$2=([0-9.]+).*/\1/"; }

# combine LABEL RESULT_LINE...: one RESULT line for several slices of one path: requests and
# errors summed, the rate over their summed time, p50 averaged, p99 the worst slice's.
combine() {
  local label=$1; shift
  printf '%s\n' "$@" | awk -v label="$label" '
    { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      n++; req += v["requests"]; secs += v["requests"] / v["req_per_s"]; p50 += v["p50_ms"]
      if (v["p99_ms"] + 0 > p99) p99 = v["p99_ms"] + 0; errs += v["non_2xx_or_errors"] }
    END { printf "%s req_per_s=%.0f p50_ms=%.2f p99_ms=%.2f requests=%d non_2xx_or_errors=%d slices=%d\n", label, req / secs, p50 / n, p99, req, errs, n }'
}

# thread_ticks PID: CPU ticks (user + system) per thread group of a process, "name ticks" lines
# (tokio's workers summed under one name).
thread_ticks() {
  for t in /proc/"$1"/task/*; do
    echo "$(tr ' ' '_' < "$t/comm") $(awk '{ print $14 + $15 }' "$t/stat")"
  done | awk '{ a[$1] += $2 } END { for (k in a) print k, a[k] }' | sort
}

# quiesce PID: waits (at most 30 s) until the process has used no CPU for half a second, so that
# one run's leftover work (a checkpoint catching up) is not done during the next run.
quiesce() {
  local last now
  last=$(awk '{ print $14 + $15 }' "/proc/$1/stat")
  for _ in $(seq 60); do
    sleep 0.5
    now=$(awk '{ print $14 + $15 }' "/proc/$1/stat")
    [ "$now" -le $((last + 1)) ] && return 0
    last=$now
  done
}

# ticks_since ACCUMULATED BEFORE AFTER: ACCUMULATED (thread_ticks lines, or empty) plus what
# each thread group used between the samples BEFORE and AFTER.
ticks_since() {
  join -a1 -a2 -e0 -o0,1.2,2.2 <(echo "${1:-}" | sed '/^$/d') <(join <(echo "$2") <(echo "$3") | awk '{ print $1, $3 - $2 }') \
    | awk '{ print $1, $2 + $3 }'
}

# cpu_per_call BEFORE AFTER REQUESTS: each thread group's CPU per request in µs, between two
# thread_ticks samples.
cpu_per_call() {
  join <(echo "$1") <(echo "$2") | awk -v n="$3" -v hz="$(getconf CLK_TCK)" \
    '{ us = ($3 - $2) * 1e6 / hz / n; if (us >= 0.5) printf "%s=%.0fus ", $1, us; total += us } END { printf "total=%.0fus", total }'
}
