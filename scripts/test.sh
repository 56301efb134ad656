#!/usr/bin/env bash
# README command 2: install what is missing, then run every test:
#   1. cargo test for the workspace (unit, router and CLI tests against real SQLite files);
#   2. the release build, served by the app behind nginx (this repository's nginx.conf, TLS, loopback
#      ports), and the Playwright suite in Debian's Chromium through it;
#   3. nginx's login rate limit.
# Every server it starts is stopped on exit, pass or fail.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
. scripts/env.sh

APP_PORT=13000
HTTPS_PORT=18443
HTTP_PORT=18080
RUN="$ROOT/.run/e2e"

say() { printf '\n== %s\n' "$*"; }

if [ -z "${SKIP_CARGO_TEST:-}" ]; then  # set it to iterate on the browser suite only
  say "cargo test (workspace)"
  cargo test --workspace --exclude frontend
fi

say "release build (cargo leptos, wasm-opt)"
cargo leptos build --release

say "starting the app and nginx on loopback"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

rm -rf "$RUN"
mkdir -p "$RUN/nginx/logs" "$RUN/nginx/temp" "$RUN/nginx/certs"
# nginx workers run as nobody and buffer into temp/.
chmod 777 "$RUN/nginx/temp"
ln -s "$ROOT/target/site" "$RUN/nginx/site"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$RUN/nginx/certs/server.key" -out "$RUN/nginx/certs/server.crt" 2>/dev/null
# The repository's nginx.conf with loopback ports; nothing else changes.
sed -e "s/listen 443 ssl/listen 127.0.0.1:$HTTPS_PORT ssl/" \
    -e "s/listen 80;/listen 127.0.0.1:$HTTP_PORT;/" \
    -e "s/server 127.0.0.1:3000;/server 127.0.0.1:$APP_PORT;/" \
    nginx.conf > "$RUN/nginx/nginx.conf"

# Production mode (Secure, __Host- cookie over nginx's TLS); a fresh database with the test users.
export APP_MODE=production
export APP_DATABASE_URL="sqlite://$RUN/app.db"
export LEPTOS_SITE_ADDR="127.0.0.1:$APP_PORT"
export RUST_LOG="${RUST_LOG:-info,sqlx=warn,tower_sessions=warn}"
for user in e2e-alice e2e-bob e2e-carol e2e-dave e2e-erin e2e-frank; do
  echo "password-of-$user" | target/release/server user create "$user" --password-stdin >/dev/null
done

target/release/server serve >"$RUN/app.log" 2>&1 &
pids+=($!)
nginx -p "$RUN/nginx" -c "$RUN/nginx/nginx.conf" -e logs/error.log -g 'daemon off;' &
pids+=($!)

wait_for() {
  for _ in $(seq 1 100); do curl -fsk -o /dev/null "$1" && return 0; sleep 0.2; done
  echo "not reachable: $1"; tail -n 50 "$RUN/app.log" "$RUN/nginx/logs/error.log" || true; return 1
}
wait_for "http://127.0.0.1:$APP_PORT/healthz"
wait_for "https://127.0.0.1:$HTTPS_PORT/healthz"

say "Playwright (Debian Chromium, through nginx)"
export E2E_BASE_URL="https://127.0.0.1:$HTTPS_PORT"
export E2E_HTTP_URL="http://127.0.0.1:$HTTP_PORT"
(cd end2end && npx playwright test)

say "nginx: login POST rate limit"
codes=$(for _ in $(seq 1 60); do
  curl -sk -o /dev/null -w '%{http_code}\n' -X POST -H "Origin: https://127.0.0.1:$HTTPS_PORT" \
    --data "username=e2e-limit&password=x" "https://127.0.0.1:$HTTPS_PORT/login"
done | sort | uniq -c)
echo "$codes"
# The app throttles failed logins too; the error log tells nginx's own refusals apart.
if ! grep -q " 429$" <<<"$codes" || ! grep -q "limiting requests" "$RUN/nginx/logs/error.log"; then
  echo "FAILED: nginx's limit_req did not refuse a burst of 60 login POSTs"; exit 1
fi
if grep -q " 5[0-9][0-9]$" <<<"$codes"; then
  echo "FAILED: a login POST got a 5xx"; exit 1
fi
echo "nginx limit_req: ok"
