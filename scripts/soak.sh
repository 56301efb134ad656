#!/usr/bin/env bash
# The soak (issue 17; a benchmark, not a CI test): the release server with the embedded queue (the
# default) carries one simulation run of webhooks to the local sink over HTTP, which verifies every
# signature and counts each webhook-id; scripts/soak.py samples it every 10 s and writes
# docs/soak/<variant>.{csv,svg,json}. Retention is shortened so that the run reaches the steady state
# in which the pruner deletes as much as arrives (and the disk stops growing).
#
#   scripts/soak.sh hour          1M/hour for an hour; delivered rows kept 10 minutes
#   scripts/soak.sh compressed    10M/hour for 10 minutes; delivered rows kept 2 minutes
#   scripts/soak.sh prune         1M rows delivered as fast as possible and aged at once, then 1M/hour
#                                 for 5 minutes while the next pass prunes the million
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
. scripts/env.sh
. scripts/stack.sh
variant="${1:-compressed}"
prefill=0
case "$variant" in
  hour) count=1000000 rate=1m-per-hour keep=600 interval=60 ;;
  compressed) count=1666667 rate=10m-per-hour keep=120 interval=20 ;;
  prune) count=83333 rate=1m-per-hour keep=3600 interval=60 prefill=1000000 ;;
  *) echo "usage: $0 hour|compressed|prune"; exit 2 ;;
esac
[ -n "${SKIP_BUILD:-}" ] || scripts/build.sh
run="$ROOT/.run/soak-$variant"
rm -rf "$run" && mkdir -p "$run" docs/soak
trap stack_stop EXIT
stack_sink "$run"
stack_env
export RUST_LOG="warn,server::retention=info"
export APP_DATABASE_URL="sqlite://$run/app.db"
# One user's run of this size: the per-user quotas are lifted for it.
export APP_NOTIFY__QUOTAS__NOTIFICATIONS_PER_RUN=20000000 APP_NOTIFY__QUOTAS__NOTIFICATIONS_PER_DAY=50000000
export APP_LIMITS__STORED_BYTES_PER_DAY=0
export APP_RETENTION__INTERVAL_SECS=$interval APP_RETENTION__DELIVERED_SECS=$keep APP_RETENTION__ATTEMPTS_SECS=$keep
"$SERVER_BIN" migrate >/dev/null
stack_app "$run" app "$APP_PORT"
stack_user soak soak-password-123
token=$("$SERVER_BIN" token create soak --scopes notifications:read,notifications:write)
python3 scripts/soak.py --base "http://127.0.0.1:$APP_PORT" --token "$token" --pid "$(cat "$run/app.pid")" \
  --queue "$run/notify-app.db" --appdb "$run/app.db" --sink "http://127.0.0.1:$SINK_PORT" \
  --count "$count" --rate "$rate" --prefill "$prefill" --out "docs/soak/$variant" \
  --title "soak ($variant): $rate, delivered rows kept ${keep}s" \
  $([ "$variant" = hour ] || echo --warmup-min 3 --flat-window-min 5)
grep -c "retention: pruned" "$run/app.log" | xargs echo "prune log lines:"
