#!/usr/bin/env bash
# A sign-in flood: 128 connections of wrong passwords for SECONDS while one signed-in member
# reads their balance. Does it stay a flood of cheap refusals?
#   - the server's RSS before, at its peak (VmHWM) and after;
#   - the member's balance read, p50/p99, alone (reference) and during the flood;
#   - how the flood was answered: 401 (a password was checked), 429 (throttled), 503 (no turn
#     at the password checker within 5 s).
# Twice: with the default throttles, and with them lifted (every attempt reaches argon2, so
# only the bounded password checker stands between the flood and the rest of the server).
# Usage: bench/signin-flood.sh [seconds, default 10] [connections, default 128]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-10}
CONNECTIONS=${2:-128}
PORT=18094
source bench/lib.sh
cargo build --release -q -p visa-cli
export VISA_OPERATOR_TOKEN=bench-operator-token-0123456789
api="http://127.0.0.1:$PORT"
echo "machine: $(nproc) cores; $CONNECTIONS connections of bad sign-ins for ${SECONDS_PER_RUN} s per run"

kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }

flood() {
  local label=$1; shift
  rm -rf "$work/data"
  VISA_LOG=warn target/release/visa-cli serve --listen "127.0.0.1:$PORT" --data-dir "$work/data" "$@" & local server=$!
  pids+=("$server")
  wait_for_port "$PORT"
  local session
  session=$(curl -fsS "$api/v1/operator/accounts" -H "Authorization: Bearer $VISA_OPERATOR_TOKEN" -H 'Content-Type: application/json' \
    -d '{"login":"bench","password":"the-right-password-1","approved":true}' | sed -E 's/.*"session_token":"([^"]+)".*/\1/')
  local rss_before; rss_before=$(kb "$server" VmRSS)
  local alone during answers
  alone=$(VISA_BENCH_SESSION=$session wrk -t1 -c1 -d5s -s bench/session-read.lua "$api" | grep RESULT)
  VISA_BENCH_SESSION=$session wrk -t1 -c1 -d"${SECONDS_PER_RUN}s" -s bench/session-read.lua "$api" | grep RESULT > "$work/during" &
  local reader=$!
  answers=$(VISA_BENCH_LOGIN=bench wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --timeout 10s -s bench/signin.lua "$api" | grep RESULT)
  wait "$reader"; during=$(cat "$work/during")
  sleep 2
  local peak after; peak=$(kb "$server" VmHWM); after=$(kb "$server" VmRSS)
  printf '%s\n  flood:   %s\n  balance alone:        %s\n  balance during flood: %s\n  RSS: before %d MB, peak %d MB, after %d MB\n' \
    "$label" "${answers#RESULT }" "${alone#RESULT }" "${during#RESULT }" $((rss_before / 1024)) $((peak / 1024)) $((after / 1024))
  kill -TERM "$server"; wait "$server" 2>/dev/null || true
}

flood "default throttles (30/min per IP, 10/min per login)"
flood "throttles lifted (every attempt runs argon2id)" --sign-ins-per-ip 100000000 --sign-ins-per-login 100000000
