#!/usr/bin/env bash
# Signed-in pages during a login flood, with the cap on concurrent password hashing
# (APP_AUTH__HASH_CONCURRENCY, default cores − 1) and without it (64): GET /success alone, then
# again while 8 connections post full logins over 32 accounts as fast as they go (one account would
# mostly measure the per-account throttle refusing attempts in flight). Through nginx, release build.
# Results: docs/benchmarks.md, "Pages during a login flood". NO_BUILD=1 reuses the last build.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
. scripts/env.sh
. scripts/stack.sh
[ -n "${NO_BUILD:-}" ] || { scripts/setup.sh; scripts/build.sh; }
DURATION=${DURATION:-10}
RUN="$ROOT/.run/bench-flood"

measure() {
  local label="$1"
  export APP_AUTH__HASH_CONCURRENCY="$2"
  # nginx's per-address login limit is lifted: every wrk connection comes from 127.0.0.1.
  stack_start "$RUN" 's/rate=60r\/m/rate=100000r\/s/'
  stack_user bench-user bench-password-123
  for i in $(seq 0 31); do stack_user "bench-$i" bench-password-123 >/dev/null; done
  local base="https://127.0.0.1:$HTTPS_PORT" cookie
  cookie=$(curl -sk -o /dev/null -D - -H "Sec-Fetch-Site: same-origin" \
    --data "username=bench-user&password=bench-password-123" "$base/login" \
    | sed -n 's/^set-cookie: \(__Host-session=[^;]*\).*/\1/Ip')
  [ -n "$cookie" ] || { echo "could not sign in"; exit 1; }
  echo "== $label: GET /success alone"
  wrk -t1 -c16 -d"${DURATION}s" --latency -H "Cookie: $cookie" "$base/success"
  echo "== $label: GET /success during a login flood (8 connections of full logins over 32 accounts)"
  wrk -t1 -c8 -d"$((DURATION + 2))s" -s scripts/bench/login-many.lua "$base/login" > "$RUN.flood.txt" &
  local flood=$!
  sleep 1
  wrk -t1 -c16 -d"${DURATION}s" --latency -H "Cookie: $cookie" "$base/success"
  wait "$flood"
  echo "-- the flood itself (503s are logins that waited 2 s for a hashing slot):"
  cat "$RUN.flood.txt"
  stack_stop
}

measure "hashing capped (default)" 0
measure "hashing uncapped (64)" 64
