#!/usr/bin/env bash
# README command 1: install what is missing, build the app (the quick profiles; nothing when no input
# changed), and run it in dev mode on http://127.0.0.1:3000 with a SQLite file in data/ and the demo
# user (see README), with the local webhook sink beside it. Deployments use the release build
# (scripts/build.sh, docs/production.md).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
. scripts/env.sh
export SERVER_BIN="$QUICK_BIN/server"
scripts/build.sh --quick
mkdir -p data
export APP_MODE="${APP_MODE:-dev}"
export APP_DATABASE_URL="${APP_DATABASE_URL:-sqlite://$ROOT/data/app.db}"
export LEPTOS_SITE_ADDR="${LEPTOS_SITE_ADDR:-127.0.0.1:3000}"
echo
echo "Implementation-Eng on http://$LEPTOS_SITE_ADDR  (sign in as demo / demo-password-2026; Ctrl-C stops)"
echo "E-mail sent through the API lands in data/maildir/new (a local SMTP server on 127.0.0.1:2525)"
# The local webhook receiver that the notification pipeline's webhook channel posts to by default
# (http://127.0.0.1:3100/webhook), so dashboard simulations with webhooks deliver out of the box.
"$SERVER_BIN" sink --addr 127.0.0.1:3100 >data/sink.log 2>&1 &
sink_pid=$!
# A real SMTP server on loopback (aiosmtpd) for e-mail sent through the API and workflows: each message
# it accepts is a file in data/maildir/new (simulation runs keep their simulated providers).
.run/venv/bin/python scripts/smtp_capture.py --listen 127.0.0.1:2525 --maildir data/maildir >data/smtp.log 2>&1 &
smtp_pid=$!
trap 'kill "$sink_pid" "$smtp_pid" 2>/dev/null || true' EXIT
export APP_NOTIFY__EMAIL__HOST="${APP_NOTIFY__EMAIL__HOST:-127.0.0.1}"
export APP_NOTIFY__EMAIL__PORT="${APP_NOTIFY__EMAIL__PORT:-2525}"
export APP_NOTIFY__EMAIL__TLS="${APP_NOTIFY__EMAIL__TLS:-none}"
# SMS goes to the sink's simulated provider, which has Twilio's API shape (point these at Twilio to send
# for real).
export APP_NOTIFY__SMS__URL="${APP_NOTIFY__SMS__URL:-http://127.0.0.1:3100/sms}"
export APP_NOTIFY__SMS__ACCOUNT_SID="${APP_NOTIFY__SMS__ACCOUNT_SID:-ACdev}"
export APP_NOTIFY__SMS__AUTH_TOKEN="${APP_NOTIFY__SMS__AUTH_TOKEN:-dev-sms-auth-token}"
"$SERVER_BIN" serve
