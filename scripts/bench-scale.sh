#!/usr/bin/env bash
# wrk through nginx against one and then two app instances in the production shape (PostgreSQL, sessions
# in Redis; see docs/production.md): GET /login and GET /success with a valid session. Results go in
# docs/benchmarks.md. Everything runs on this machine, so wrk, nginx, PostgreSQL, Redis and the instances
# share its cores.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
. scripts/env.sh
. scripts/stack.sh
DURATION=${DURATION:-20s}
CONNECTIONS=${CONNECTIONS:-64}
[ -n "${SKIP_BUILD:-}" ] || scripts/build.sh
BASE="https://127.0.0.1:$HTTPS_PORT"

for instances in 1 2; do
  echo "=================== $instances instance(s) ==================="
  stack_start_scaled "$ROOT/.run/bench-scale" "$instances"
  stack_user bench-user bench-password-123
  cookie=$(curl -sk -o /dev/null -D - -H "Sec-Fetch-Site: same-origin" \
    --data "username=bench-user&password=bench-password-123" "$BASE/login" \
    | sed -n 's/^set-cookie: \(__Host-session=[^;]*\).*/\1/Ip')
  [ -n "$cookie" ] || { echo "could not sign in"; exit 1; }
  [ "$(curl -sk -o /dev/null -w '%{http_code}' -H "Cookie: $cookie" "$BASE/success")" = 200 ] || { echo "session not valid"; exit 1; }
  echo "== GET /login ($instances instance(s))"
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "$BASE/login"
  echo "== GET /success signed in ($instances instance(s))"
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -H "Cookie: $cookie" "$BASE/success"
  stack_stop
done
