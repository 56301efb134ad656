# Sourced by test.sh and bench.sh: starts Redis, the local webhook sink, the release server and nginx
# (this repository's nginx.conf, with loopback ports and its own prefix under .run/) and stops them all
# on exit. Expects ROOT and env.sh.

APP_PORT=${APP_PORT:-13000}
HTTPS_PORT=${HTTPS_PORT:-18443}
HTTP_PORT=${HTTP_PORT:-18080}
SINK_PORT=${SINK_PORT:-13100}
REDIS_PORT=${REDIS_PORT:-16390}

stack_pids=()
stack_stop() {
  for pid in "${stack_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${stack_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  stack_pids=()
}

# stack_start RUN_DIR [extra sed expression for nginx.conf]
stack_start() {
  local run="$1" extra_sed="${2:-}"
  rm -rf "$run"
  mkdir -p "$run/nginx/logs" "$run/nginx/temp" "$run/nginx/certs"
  chmod 777 "$run/nginx/temp"   # nginx workers run as nobody and buffer into temp/
  ln -s "$ROOT/target/site" "$run/nginx/site"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$run/nginx/certs/server.key" -out "$run/nginx/certs/server.crt" 2>/dev/null
  # The repository's nginx.conf with loopback ports; nothing else changes (unless extra_sed says so).
  sed -e "s/listen 443 ssl/listen 127.0.0.1:$HTTPS_PORT ssl/" \
      -e "s/listen 80;/listen 127.0.0.1:$HTTP_PORT;/" \
      -e "s/server 127.0.0.1:3000;/server 127.0.0.1:$APP_PORT;/" \
      ${extra_sed:+-e "$extra_sed"} \
      "$ROOT/nginx.conf" > "$run/nginx/nginx.conf"

  # Redis (Debian's redis-server) for the notification pipeline's Redis Streams backend, and the local
  # webhook sink the pipeline's webhook channel delivers to.
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$run" >"$run/redis.log" 2>&1 &
  stack_pids+=($!)
  trap stack_stop EXIT
  local ok=""
  for _ in $(seq 1 100); do redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && { ok=1; break; }; sleep 0.1; done
  [ -n "$ok" ] || { echo "redis-server did not start"; cat "$run/redis.log"; return 1; }
  "$ROOT/target/release/server" sink --addr "127.0.0.1:$SINK_PORT" >"$run/sink.log" 2>&1 &
  stack_pids+=($!)
  export APP_NOTIFY__REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
  export APP_NOTIFY__WEBHOOK__URL="http://127.0.0.1:$SINK_PORT/webhook"

  # Production mode (Secure, __Host- cookie over nginx's TLS) on a fresh database.
  export APP_MODE=production
  export APP_DATABASE_URL="sqlite://$run/app.db"
  export LEPTOS_SITE_ADDR="127.0.0.1:$APP_PORT"
  export RUST_LOG="${RUST_LOG:-info,sqlx=warn,tower_sessions=warn}"
  "$ROOT/target/release/server" migrate

  "$ROOT/target/release/server" serve >"$run/app.log" 2>&1 &
  stack_pids+=($!)
  nginx -p "$run/nginx" -c "$run/nginx/nginx.conf" -e logs/error.log -g 'daemon off;' &
  stack_pids+=($!)

  local url
  for url in "http://127.0.0.1:$SINK_PORT/stats"  "http://127.0.0.1:$APP_PORT/healthz" "https://127.0.0.1:$HTTPS_PORT/healthz"; do
    local ok=""
    for _ in $(seq 1 100); do curl -fsk -o /dev/null "$url" && { ok=1; break; }; sleep 0.2; done
    if [ -z "$ok" ]; then
      echo "not reachable: $url"; tail -n 50 "$run/app.log" "$run/nginx/logs/error.log" || true; return 1
    fi
  done
}

# stack_user NAME PASSWORD: creates an account with the CLI.
stack_user() {
  echo "$2" | "$ROOT/target/release/server" user create "$1" --password-stdin >/dev/null
}
