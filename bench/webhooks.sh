#!/usr/bin/env bash
# The paid path with webhook alerts configured, against the same path without them and against
# the server before webhooks existed, in one run (issue 37: "the money path's throughput and p99
# within noise of before"):
#   before  — visa-cli built from $VISA_BENCH_BEFORE (default ce6bb32, the last commit before
#             webhooks), the same load;
#   plain   — this tree's server, no endpoint: every hold still decides its alerts (it reads the
#             account's thresholds and the key's alert bits with the state it read already);
#   alerted — this tree's server, an endpoint that wants every event and three balance
#             thresholds: the holds decide alerts and, at a steady state, none fires (each fires
#             once per crossing, or per key, cap and day), so nothing more is written.
# Each runs ROUNDS times, interleaved (before, plain, alerted, before, …), each server on its own
# fresh SQLite data dir (with VISA_BENCH_DATABASE=postgres, its own database of one throwaway
# PostgreSQL cluster, bench/pg/cluster.sh); the median round of each is compared.
# Usage: bench/webhooks.sh [seconds per run, default 15] [connections, default 64] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-15}
CONNECTIONS=${2:-64}
ROUNDS=${3:-3}
KEYS=${VISA_BENCH_KEY_COUNT:-64}
BEFORE=${VISA_BENCH_BEFORE:-ce6bb32}
source bench/lib.sh
database=()
if [ "${VISA_BENCH_DATABASE:-sqlite}" = postgres ]; then
  source bench/pg/cluster.sh
  pg_psql -c "CREATE DATABASE bench_before" -c "CREATE DATABASE bench_plain" -c "CREATE DATABASE bench_alerted"
fi
# database_of NAME: the serve arguments of NAME's database (none: SQLite in its data dir).
database_of() { [ -n "${pg_url:-}" ] && echo "--database" "${pg_url/\/visa\?//bench_$1?}"; true; }
cargo build --release -q -p visa-cli

# The server as it was before webhooks, built once per revision beside this tree's target dir.
before_bin="target/bench-before/$BEFORE/release/visa-cli"
if [ ! -x "$before_bin" ]; then
  git worktree add -q --detach "$work/before" "$BEFORE"
  cargo build --release -q -p visa-cli --manifest-path "$work/before/Cargo.toml" --target-dir "target/bench-before/$BEFORE"
  git worktree remove --force "$work/before"
fi

export VISA_OPERATOR_TOKEN=bench-operator-token-0123456789
declare -A port=([before]=18094 [plain]=18095 [alerted]=18096)
# shellcheck disable=SC2046 # database_of's words are the arguments
VISA_LOG=warn "$before_bin" serve --listen "127.0.0.1:${port[before]}" --data-dir "$work/before-data" $(database_of before) \
  & pids+=($!)
for name in plain alerted; do
  # shellcheck disable=SC2046
  VISA_LOG=warn target/release/visa-cli serve --listen "127.0.0.1:${port[$name]}" --data-dir "$work/$name-data" \
    $(database_of "$name") --webhook-allow-private 127.0.0.0/8 & pids+=($!)
done
for name in before plain alerted; do
  wait_for_port "${port[$name]}"
  rm -f "$work/keys"
  create_keys "http://127.0.0.1:${port[$name]}" "$KEYS" echo
  mv "$work/keys" "$work/keys-$name"
done
alerted="http://127.0.0.1:${port[alerted]}"
session=$(cat "$work/session")
curl -fsS -X PATCH "$alerted/v1/api/account" -H "Authorization: Bearer $session" -H 'Content-Type: application/json' \
  -d '{"low_balance_thresholds_cents":[50000000,10000000,1000]}' >/dev/null
curl -fsS "$alerted/v1/api/webhooks" -H "Authorization: Bearer $session" -H 'Content-Type: application/json' \
  -d '{"url":"http://127.0.0.1:9/hook","events":["*"]}' >/dev/null

echo "machine: $(nproc) cores; ${DURATION}s per run, $CONNECTIONS connections, $KEYS keys, $ROUNDS rounds; before = $BEFORE; ${VISA_BENCH_DATABASE:-sqlite}"
results=""
for round in $(seq "$ROUNDS"); do
  for name in before plain alerted; do
    line=$(run_wrk bench/execute.lua "http://127.0.0.1:${port[$name]}" "$name" "$work/keys-$name")
    echo "round $round: $line"
    results+="$line"$'\n'
  done
done
for name in before plain alerted; do
  # shellcheck disable=SC2046
  echo "ledger of $name: $("$([ "$name" = before ] && echo "$before_bin" || echo target/release/visa-cli)" ledger verify --data-dir "$work/$name-data" $(database_of "$name") 2>&1 | tail -1)"
done
events=$(curl -fsS "$alerted/v1/api/webhooks" -H "Authorization: Bearer $session" | grep -o '"id":[0-9]*' | head -1 | cut -d: -f2)
echo "alerted endpoint's delivery log (attempts): $(curl -fsS "$alerted/v1/api/webhooks/$events/deliveries" -H "Authorization: Bearer $session" | grep -o '"attempt"' | wc -l)"
# The median round of each by throughput, and its p99; the ratios to `before`.
echo "$results" | awk '
  NF { split($0, f, " "); name = f[1]
       for (i = 2; i <= NF; i++) { split(f[i], kv, "="); v[kv[1]] = kv[2] }
       n[name]++; rps[name, n[name]] = v["req_per_s"]; p99[name, n[name]] = v["p99_ms"] }
  function median(name, key,   i, j, t, a, m) {
    m = n[name]; for (i = 1; i <= m; i++) a[i] = (key == "rps") ? rps[name, i] : p99[name, i]
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return a[int((m + 1) / 2)] }
  END {
    b = median("before", "rps"); bp = median("before", "p99")
    for (k = 1; k <= 3; k++) { name = (k == 1) ? "before" : (k == 2) ? "plain" : "alerted"
      printf "%-8s median %7.0f req/s (%5.1f%% of before), p99 %6.2f ms (%+.2f ms)\n", name, median(name, "rps"), 100 * median(name, "rps") / b, median(name, "p99"), median(name, "p99") - bp }
  }'
