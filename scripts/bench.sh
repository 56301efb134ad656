#!/usr/bin/env bash
# Measures the release build through nginx with wrk (see docs/benchmarks.md for results):
# GET /login, GET /success with a valid session, and full logins per second. For the login run,
# nginx's per-address login limit is lifted (every wrk connection comes from 127.0.0.1).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
. scripts/env.sh
. scripts/stack.sh
DURATION=${DURATION:-20s}
scripts/build.sh
stack_start "$ROOT/.run/bench" 's/rate=60r\/m/rate=100000r\/s/'
stack_user bench-user bench-password-123
BASE="https://127.0.0.1:$HTTPS_PORT"
cookie=$(curl -sk -o /dev/null -D - -H "Sec-Fetch-Site: same-origin" \
  --data "username=bench-user&password=bench-password-123" "$BASE/login" \
  | sed -n 's/^set-cookie: \(__Host-session=[^;]*\).*/\1/Ip')
[ -n "$cookie" ] || { echo "could not sign in"; exit 1; }
[ "$(curl -sk -o /dev/null -w '%{http_code}' -H "Cookie: $cookie" "$BASE/success")" = 200 ] || { echo "session not valid"; exit 1; }

echo "== GET /login"
wrk -t2 -c32 -d"$DURATION" --latency "$BASE/login"
echo "== GET /success (signed in)"
wrk -t2 -c32 -d"$DURATION" --latency -H "Cookie: $cookie" "$BASE/success"
echo "== POST /login (full logins)"
wrk -t2 -c8 -d"$DURATION" --latency -s scripts/bench/login.lua "$BASE/login"
