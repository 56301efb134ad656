# Sourced by test.sh and bench.sh: starts the servers the end-to-end tests and benchmarks need on
# loopback ports and stops them all on exit. Expects ROOT and env.sh.
#
#   stack_start RUN [sed]      one instance on SQLite (the embedded default) with Redis, the webhook
#                              sink and nginx: what the browser suite and the Python examples use
#   stack_start_scaled RUN N   the production shape: PostgreSQL, one Redis for sessions and the queue,
#                              N instances (1 or 2) behind nginx, the sink
#
# nginx runs this repository's nginx.conf with only the listen and upstream ports rewritten.

APP_PORT=${APP_PORT:-13000}
APP_PORT2=${APP_PORT2:-13001}
HTTPS_PORT=${HTTPS_PORT:-18443}
HTTP_PORT=${HTTP_PORT:-18080}
SINK_PORT=${SINK_PORT:-13100}
REDIS_PORT=${REDIS_PORT:-16390}
PG_PORT=${PG_PORT:-15440}
SMTP_PORT=${SMTP_PORT:-12525}
PUSH_PORT=${PUSH_PORT:-13200}

. "$ROOT/scripts/pg.sh"

stack_pids=()
stack_stop() {
  for pid in "${stack_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${stack_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  stack_pids=()
  pg_stop
}

# stack_prepare RUN INSTANCES [sed]: fresh run folder, a self-signed certificate, nginx.conf for it.
stack_prepare() {
  local run="$1" instances="$2" extra_sed="${3:-}"
  rm -rf "$run"
  mkdir -p "$run/nginx/logs" "$run/nginx/temp" "$run/nginx/certs"
  chmod 777 "$run/nginx/temp"   # nginx workers run as nobody and buffer into temp/
  ln -s "$ROOT/target/site" "$run/nginx/site"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$run/nginx/certs/server.key" -out "$run/nginx/certs/server.crt" 2>/dev/null
  local second="s/server 127.0.0.1:3001 /server 127.0.0.1:$APP_PORT2 /"
  [ "$instances" -ge 2 ] || second="/server 127.0.0.1:3001 /d"
  sed -e "s/listen 443 ssl/listen 127.0.0.1:$HTTPS_PORT ssl/" \
      -e "s/listen 80;/listen 127.0.0.1:$HTTP_PORT;/" \
      -e "s/server 127.0.0.1:3000 /server 127.0.0.1:$APP_PORT /" \
      -e "$second" \
      ${extra_sed:+-e "$extra_sed"} \
      "$ROOT/nginx.conf" > "$run/nginx/nginx.conf"
  # test.sh has one EXIT trap for everything (scripts/stages.sh); the benchmark scripts have their own.
  if declare -F at_exit >/dev/null; then at_exit stack_stop; else trap stack_stop EXIT; fi
}

# Debian's redis-server: the queue's Redis Streams backend (and, scaled, the session store).
stack_redis() {
  local run="$1"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$run" >"$run/redis.log" 2>&1 &
  stack_pids+=($!)
  local ok=""
  for _ in $(seq 1 100); do redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && { ok=1; break; }; sleep 0.1; done
  [ -n "$ok" ] || { echo "redis-server did not start"; cat "$run/redis.log"; return 1; }
  export APP_NOTIFY__REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
}

# The local webhook receiver the pipeline's webhook channel delivers to (verifies signatures, counts).
# Production refuses to sign with the documented example secret, so each stack gets its own, shared
# by the sink and the app (the instances inherit it).
stack_sink() {
  local run="$1"
  export APP_NOTIFY__WEBHOOK__SECRET="${APP_NOTIFY__WEBHOOK__SECRET:-whsec_$(openssl rand -base64 32 | tr -d '\n')}"
  "$SERVER_BIN" sink --addr "127.0.0.1:$SINK_PORT" --secret "$APP_NOTIFY__WEBHOOK__SECRET" >"$run/sink.log" 2>&1 &
  stack_pids+=($!)
  export APP_NOTIFY__WEBHOOK__URL="http://127.0.0.1:$SINK_PORT/webhook"
  # The sink is also the simulated SMS provider, with Twilio's API shape (notify::sink).
  export APP_NOTIFY__SMS__URL="http://127.0.0.1:$SINK_PORT/sms" APP_NOTIFY__SMS__ACCOUNT_SID=ACtest
  export APP_NOTIFY__SMS__AUTH_TOKEN=dev-sms-auth-token E2E_SMS_PROVIDER_URL="http://127.0.0.1:$SINK_PORT/sms"
  stack_wait "http://127.0.0.1:$SINK_PORT/stats"
}

# stack_python RUN NAME PORT SCRIPT [ARGS…]: one of the Python test servers (scripts/SCRIPT, in the
# venv scripts/setup.sh makes) on PORT, returning once it has written its address to RUN/NAME.ready.
stack_python() {
  local run="$1" name="$2" port="$3" script="$4"
  shift 4
  "$ROOT/.run/venv/bin/python" "$ROOT/scripts/$script" --listen "127.0.0.1:$port" --ready-file "$run/$name.ready" "$@" \
    >"$run/$name.log" 2>&1 &
  stack_pids+=($!)
  local ok=""
  for _ in $(seq 1 100); do [ -s "$run/$name.ready" ] && { ok=1; break; }; sleep 0.1; done
  [ -n "$ok" ] || { echo "scripts/$script did not start"; cat "$run/$name.log"; return 1; }
}

# A real SMTP server on loopback (aiosmtpd, scripts/smtp_capture.py) that keeps what it accepts in
# RUN/maildir, where the tests read it back. Users may write to the tests' domains only (production
# allows nobody by default); 4xx answers are retried within the test's time.
stack_smtp() {
  local run="$1"
  stack_python "$run" smtp "$SMTP_PORT" smtp_capture.py --maildir "$run/maildir"
  export SMTP_MAILDIR="$run/maildir"
  export APP_NOTIFY__EMAIL__HOST=127.0.0.1 APP_NOTIFY__EMAIL__PORT="$SMTP_PORT" APP_NOTIFY__EMAIL__TLS=none
  export APP_NOTIFY__EMAIL__ALLOW_RECIPIENTS="${APP_NOTIFY__EMAIL__ALLOW_RECIPIENTS:-@example.com,@example.test}"
  export APP_NOTIFY__EMAIL__RETRY__SCHEDULE_MS="${APP_NOTIFY__EMAIL__RETRY__SCHEDULE_MS:-50,100,200}"
}

# A Web Push service on loopback (scripts/push_service.py): it hands out subscriptions as a browser
# would, and decrypts and checks what the app pushes (an independent implementation of RFC 8291/8292).
stack_push() {
  stack_python "$1" push "$PUSH_PORT" push_service.py
  export E2E_PUSH_SERVICE_URL="http://127.0.0.1:$PUSH_PORT"
}

# Production mode (Secure, __Host- cookie over nginx's TLS). Webhook endpoints may point at loopback
# (the sink and the Python receiver), and the `crm` inbound source signs with the spec's example secret.
# Sign-up is turned on (production's default is off) with room for the suite's sign-ups, which all
# come from 127.0.0.1; the router tests check the per-address limit itself.
stack_env() {
  export APP_MODE=production
  export APP_SIGNUP__ENABLED="${APP_SIGNUP__ENABLED:-true}"
  export APP_SIGNUP__IP_BURST="${APP_SIGNUP__IP_BURST:-200}"
  export APP_HOOKS__ALLOW_NETWORKS="127.0.0.1/32"
  # Production refuses to start without a key that seals endpoint secrets; the tests' own.
  export APP_HOOKS__SECRET_KEYS="${APP_HOOKS__SECRET_KEYS:-dGVzdC1zdGFjayBzZWFsaW5nIGtleSwgcHVibGljISE=}"
  export IMPLEMENTATION_ENG_CRM_SECRET="${IMPLEMENTATION_ENG_CRM_SECRET:-whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}"
  export APP_HOOKS__INBOUND__SOURCES__CRM__SECRETS="$IMPLEMENTATION_ENG_CRM_SECRET"
  # An inbound source belongs to one user: only that user's runs may wait on it. The suite's CRM
  # confirmations (Playwright's onboarding test, the Python orchestration tests) all run as this user.
  export APP_HOOKS__INBOUND__SOURCES__CRM__OWNER="${APP_HOOKS__INBOUND__SOURCES__CRM__OWNER:-e2e-python}"
  # Web Push signs with the stack's own VAPID key (production has none unless set).
  export APP_NOTIFY__PUSH__VAPID_PRIVATE_KEY="${APP_NOTIFY__PUSH__VAPID_PRIVATE_KEY:-Hn5Lz0dQw0l8t2q1F4m2nq3d3Xx8tE7pXWk0cQhM2Ls}"
  # The operator who sees storage per store (the dashboard's storage card, /api/v1/ops/storage).
  export APP_OPERATORS="${APP_OPERATORS:-e2e-olga}"
  export RUST_LOG="${RUST_LOG:-info,sqlx=warn,tower_sessions=warn}"
}

# stack_app RUN NAME PORT: one `server serve` with its own queue file and log ($RUN/NAME.log).
stack_app() {
  local run="$1" name="$2" port="$3"
  APP_INSTANCE_NAME="$name" LEPTOS_SITE_ADDR="127.0.0.1:$port" \
    APP_NOTIFY__QUEUE_URL="sqlite://$run/notify-$name.db" \
    "$SERVER_BIN" serve >"$run/$name.log" 2>&1 &
  stack_pids+=($!)
  echo $! >"$run/$name.pid"
  stack_wait "http://127.0.0.1:$port/healthz" || { tail -n 50 "$run/$name.log"; return 1; }
}

stack_nginx() {
  local run="$1"
  nginx -p "$run/nginx" -c "$run/nginx/nginx.conf" -e logs/error.log -g 'daemon off;' &
  stack_pids+=($!)
  # The plain-HTTP server answers with a redirect whether or not an instance is up yet.
  stack_wait "http://127.0.0.1:$HTTP_PORT/" || { tail -n 50 "$run/nginx/logs/error.log"; return 1; }
}

stack_wait() {
  local url ok
  for url in "$@"; do
    ok=""
    for _ in $(seq 1 100); do curl -fsk -o /dev/null "$url" && { ok=1; break; }; sleep 0.2; done
    [ -n "$ok" ] || { echo "not reachable: $url"; return 1; }
  done
}

# stack_start RUN [extra sed expression for nginx.conf]
stack_start() {
  local run="$1"
  stack_prepare "$run" 1 "${2:-}"
  stack_redis "$run"
  stack_sink "$run"
  stack_smtp "$run"
  stack_push "$run"
  stack_env
  export APP_DATABASE_URL="sqlite://$run/app.db"
  # The CLI's own queue file (user and token commands open the pipeline), in the run, not the checkout.
  export APP_NOTIFY__QUEUE_URL="sqlite://$run/notify-cli.db"
  "$SERVER_BIN" migrate
  stack_app "$run" app "$APP_PORT"
  stack_nginx "$run"
  stack_wait "https://127.0.0.1:$HTTPS_PORT/healthz"
}

# stack_start_scaled RUN INSTANCES [extra sed]: PostgreSQL + Redis (sessions and queue) + instances.
# With STACK_NO_APPS=1 the instances are left to the caller (the scale-out test starts and kills them).
stack_start_scaled() {
  local run="$1" instances="$2"
  stack_prepare "$run" "$instances" "${3:-}"
  pg_start "$run/pg" "$PG_PORT"
  stack_redis "$run"
  stack_sink "$run"
  stack_smtp "$run"
  stack_env
  export APP_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  export APP_NOTIFY__QUEUE_URL="sqlite://$run/notify-cli.db"
  export APP_SESSION__STORE=redis
  "$SERVER_BIN" migrate
  if [ -z "${STACK_NO_APPS:-}" ]; then
    stack_app "$run" a "$APP_PORT"
    [ "$instances" -lt 2 ] || stack_app "$run" b "$APP_PORT2"
  fi
  stack_nginx "$run"
}

# stack_user NAME PASSWORD: creates an account with the CLI.
stack_user() {
  echo "$2" | "$SERVER_BIN" user create "$1" --password-stdin >/dev/null
}
