#!/usr/bin/env bash
# Side by side in one run, one markdown table (stdout and .run/bench/table.md):
#   - the app, one release instance on SQLite (dev mode: plain-HTTP cookies),
#   - the seed's own stack: Django 5.2 on uWSGI (two processes, database sessions; scripts/bench/django),
#   - the app in the production shape (PostgreSQL, sessions in Redis, two instances; stack_start_scaled),
# each behind the same plain-HTTP nginx on loopback (access_log off, upstream keepalive 32, HTTP/1.1),
# measured with `wrk -t1 -c16 -d$DURATION --latency`. Rows: nginx's own constant page (the ceiling),
# /healthz (the app's floor), /login, /success and every other signed-in page, Django's /login and
# /success; LOGINS=1 adds full logins per second (scripts/bench/login-many.lua, django-login.lua).
#
#   scripts/bench.sh                          builds the release, 10 s per row
#   SKIP_BUILD=1 DURATION=3s scripts/bench.sh  the release as built, short rows
#
# Ports are 2xxxx so that a test run's stack (stack.sh's 1xxxx defaults) can run beside it.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export APP_PORT=${APP_PORT:-23000} APP_PORT2=${APP_PORT2:-23001} HTTPS_PORT=${HTTPS_PORT:-28443} \
  HTTP_PORT=${HTTP_PORT:-28080} SINK_PORT=${SINK_PORT:-23100} REDIS_PORT=${REDIS_PORT:-26390} PG_PORT=${PG_PORT:-25440}
SINGLE_PORT=${SINGLE_PORT:-23010}    # the single SQLite instance
DJANGO_PORT=${DJANGO_PORT:-23020}    # uWSGI's http-socket
NGINX_SINGLE=${NGINX_SINGLE:-28091}  # the bench nginx: one plain-HTTP server per target
NGINX_DJANGO=${NGINX_DJANGO:-28092}
NGINX_PROD=${NGINX_PROD:-28093}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-1s}
USERNAME=bench-user                  # the signed-in rows' account (django-login.lua's too)
PASSWORD=bench-password-123

scripts/setup.sh
. scripts/env.sh
. scripts/stack.sh
[ "${SKIP_BUILD:-}" = 1 ] || scripts/build.sh
[ -x "$SERVER_BIN" ] || { echo "no release build at $SERVER_BIN (scripts/build.sh)"; exit 1; }
# The app instances log warnings only: nginx runs with access_log off and uWSGI with disable-logging.
export RUST_LOG=warn

RUN="$ROOT/.run/bench"
VENV="$ROOT/.run/bench-venv"
rm -rf "$RUN"
mkdir -p "$RUN/single" "$RUN/wrk" "$RUN/nginx/logs" "$RUN/nginx/temp"
chmod 777 "$RUN/nginx/temp"   # nginx workers run as nobody when started as root

# One EXIT trap for everything; stack.sh registers stack_stop through at_exit, and stopping is called
# here anyway.
bench_pids=()
at_exit() { :; }
stop_pid() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local keep=() p
  for p in "${bench_pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  bench_pids=("${keep[@]}")
}
cleanup() {
  for pid in "${bench_pids[@]}"; do stop_pid "$pid"; done
  stack_stop
}
trap cleanup EXIT

# --- the bench nginx -----------------------------------------------------------------------------------
# The proxied location copies nginx.conf's `location /` (Host, X-Real-IP, X-Forwarded-For/-Proto: the app
# trusts loopback proxies' X-Real-IP for the client address its limits count under); no TLS, no
# limit_req, no static files, no security-header fill-ins (the app and Django send their own).
server_block() {  # PORT UPSTREAM
  cat <<EOF
    server {
        listen 127.0.0.1:$1;
        location = /ceiling {
            default_type text/plain;
            return 200 "ok\n";
        }
        location / {
            proxy_pass http://$2;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Real-IP \$remote_addr;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
EOF
}
cat >"$RUN/nginx/nginx.conf" <<EOF
worker_processes auto;
pid logs/nginx.pid;
error_log logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path temp/client_body;
    proxy_temp_path temp/proxy;
    fastcgi_temp_path temp/fastcgi;
    uwsgi_temp_path temp/uwsgi;
    scgi_temp_path temp/scgi;
    server_tokens off;
    keepalive_timeout 65s;
    upstream single { server 127.0.0.1:$SINGLE_PORT; keepalive 32; }
    upstream django { server 127.0.0.1:$DJANGO_PORT; keepalive 32; }
    upstream prod { server 127.0.0.1:$APP_PORT; server 127.0.0.1:$APP_PORT2; keepalive 32; }
$(server_block "$NGINX_SINGLE" single)
$(server_block "$NGINX_DJANGO" django)
$(server_block "$NGINX_PROD" prod)
}
EOF
nginx -p "$RUN/nginx" -c "$RUN/nginx/nginx.conf" -e logs/error.log -g 'daemon off;' &
bench_pids+=($!)
stack_wait "http://127.0.0.1:$NGINX_SINGLE/ceiling"

# --- measuring -----------------------------------------------------------------------------------------
declare -A RPS P50 P99 ERR
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
  printf "%.2f", (u == "us" ? n / 1000 : u == "ms" ? n : u == "s" ? n * 1000 : u == "m" ? n * 60000 : n) }'; }

# measure KEY URL [wrk options]: one row; wrk's own output is kept in .run/bench/wrk/KEY.txt.
measure() {
  local key="$1" url="$2"; shift 2
  local out="$RUN/wrk/${key//[:\/]/_}.txt"
  echo "== $key: $url" >&2
  local logged; logged=$(wc -l <"$RUN/nginx/logs/error.log")
  wrk -t1 -c16 -d"$DURATION" --latency "$@" "$url" >"$out"
  # nginx retries a request whose upstream connection failed: wrk sees a success, nginx logs an error.
  echo "nginx errors: $(($(wc -l <"$RUN/nginx/logs/error.log") - logged))" >>"$out"
  RPS[$key]=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
  P50[$key]=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
  P99[$key]=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
  # Answers other than 2xx/3xx, socket errors, nginx's upstream errors, and (Django logins) answers
  # that were not a redirect.
  ERR[$key]=$(awk '/Non-2xx or 3xx responses:/ || /^nginx errors:/ { n += $NF }
    /Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 }
    /^Not redirected:/ { n += $NF } END { print n + 0 }' "$out")
}
warm() { wrk -t1 -c16 -d"$WARMUP" "$@" >/dev/null; }

# check_page URL COOKIE [TEXT]: fails the run unless the page answers 200 (not the redirect to the
# login that an invalid session gets, which wrk would count as a success) and shows TEXT.
check_page() {
  local body code
  body=$(curl -s -H "Cookie: $2" -w '\n%{http_code}' "$1")
  code=${body##*$'\n'}
  [ "$code" = 200 ] || { echo "FAIL: $1 answered $code with the session (expected 200)"; exit 1; }
  [ -z "${3:-}" ] || grep -qF "$3" <<<"$body" || { echo "FAIL: $1 does not show '$3'"; exit 1; }
}

# app_sign_in BASE: the session cookie of a form login (the app refuses a POST without Sec-Fetch-Site
# or a matching Origin). Production sets `__Host-session=…; Secure`: curl would not send that over
# plain HTTP from a jar, but wrk and curl -H replay it as it is, and the app does not check the scheme.
app_sign_in() {
  local cookie
  cookie=$(curl -s -o /dev/null -D - -H "Sec-Fetch-Site: same-origin" \
    --data-urlencode "username=$USERNAME" --data-urlencode "password=$PASSWORD" --data "next=%2Fsuccess" "$1/login" \
    | tr -d '\r' | sed -n 's/^set-cookie: \(\(__Host-\)\{0,1\}session=[^;]*\).*/\1/Ip' | tail -n 1)
  [ -n "$cookie" ] || { echo "FAIL: could not sign in at $1/login" >&2; return 1; }
  check_page "$1/success" "$cookie" "$USERNAME" >&2
  echo "$cookie"
}

# The signed-in pages besides /success: app::PROTECTED_PAGES (app/src/lib.rs) but the per-id ones.
# `/success?render` is the same page rendered every time: the session-only page cache
# (server/src/page_cache.rs) replays only requests without a query.
PAGES=('/success?render' /notifications /workflows /settings/tokens /settings/webhooks /settings/password)

# measure_app PREFIX BASE COOKIE: the app's rows for one target.
measure_app() {
  local p="$1" base="$2" cookie="$3" page
  warm -H "Cookie: $cookie" "$base/success"
  measure "$p:/healthz" "$base/healthz"
  measure "$p:/login" "$base/login"
  for page in /success "${PAGES[@]}"; do
    check_page "$base$page" "$cookie" "$USERNAME"
    measure "$p:$page" "$base$page" -H "Cookie: $cookie"
    check_page "$base$page" "$cookie" "$USERNAME"
  done
  if [ "${LOGINS:-}" = 1 ]; then
    measure "$p:logins" "$base/login" --timeout 10s -s scripts/bench/login-many.lua
    check_page "$base/success" "$cookie" "$USERNAME"
  fi
}

# login_accounts [VAR=value...]: bench-0 … bench-31 for scripts/bench/login-many.lua. The app refuses
# (429) more parallel logins to one account than its burst, whatever the password (the guard against
# parallel guessing), so a flood of one account (login.lua) measures refusals, not logins.
login_accounts() {
  local i
  for i in $(seq 0 31); do echo "$PASSWORD" | env "$@" "$SERVER_BIN" user create "bench-$i" --password-stdin >/dev/null; done
}

# --- 1. the app, one instance on SQLite ------------------------------------------------------------------
# Dev mode for plain-HTTP cookies (production's are Secure and __Host-). Dev mode also creates the demo
# user, who is an operator there (the dashboard shows the storage card): the rows sign in as an
# ordinary user made with the CLI, as in the production shape.
single_env=(APP_MODE=dev APP_DATABASE_URL="sqlite://$RUN/single/app.db" APP_NOTIFY__QUEUE_URL="sqlite://$RUN/single/notify.db")
env "${single_env[@]}" "$SERVER_BIN" migrate >/dev/null
echo "$PASSWORD" | env "${single_env[@]}" "$SERVER_BIN" user create "$USERNAME" --password-stdin >/dev/null
if [ "${LOGINS:-}" = 1 ]; then login_accounts "${single_env[@]}"; fi
env "${single_env[@]}" LEPTOS_SITE_ADDR="127.0.0.1:$SINGLE_PORT" "$SERVER_BIN" serve >"$RUN/single/app.log" 2>&1 &
single_pid=$!
bench_pids+=($single_pid)
stack_wait "http://127.0.0.1:$SINGLE_PORT/healthz" || { tail -n 50 "$RUN/single/app.log"; exit 1; }

# --- 2. Django on uWSGI ----------------------------------------------------------------------------------
export DJANGO_SECRET_KEY; DJANGO_SECRET_KEY=$(openssl rand -base64 48 | tr -d '\n')
export PYTHONPYCACHEPREFIX="$RUN/pycache"   # no __pycache__ in the checkout
VENV="$VENV" STATE_DIR="$RUN/django" USERNAME="$USERNAME" PASSWORD="$PASSWORD" scripts/bench/django/setup.sh
DJANGO_STATE_DIR="$RUN/django" DJANGO_PORT="$DJANGO_PORT" VIRTUAL_ENV="$VENV" \
  "$VENV/bin/uwsgi" --ini scripts/bench/django/uwsgi.ini >"$RUN/django/uwsgi.log" 2>&1 &
django_pid=$!
bench_pids+=($django_pid)
stack_wait "http://127.0.0.1:$DJANGO_PORT/login/" || { tail -n 50 "$RUN/django/uwsgi.log"; exit 1; }

# Django's login: the csrftoken cookie and the form's csrfmiddlewaretoken from a GET, then the POST;
# the signed-in requests carry sessionid and csrftoken, as a browser does.
DJ="http://127.0.0.1:$NGINX_DJANGO"
jar="$RUN/django/cookies.txt"
csrf_form() { sed -n 's/.*name="csrfmiddlewaretoken" value="\([^"]*\)".*/\1/p' | head -n 1; }
token=$(curl -s -c "$jar" "$DJ/login/" | csrf_form)
code=$(curl -s -o /dev/null -w '%{http_code}' -b "$jar" -c "$jar" --data-urlencode "csrfmiddlewaretoken=$token" \
  --data-urlencode "username=$USERNAME" --data-urlencode "password=$PASSWORD" --data "next=%2Fsuccess%2F" "$DJ/login/")
[ "$code" = 302 ] || { echo "FAIL: Django login answered $code (expected 302)"; exit 1; }
dj_cookie=$(awk '$6 == "sessionid" || $6 == "csrftoken" { print $6 "=" $7 }' "$jar" | paste -sd ';' | sed 's/;/; /g')
grep -q sessionid <<<"$dj_cookie" || { echo "FAIL: no Django sessionid"; exit 1; }
check_page "$DJ/success/" "$dj_cookie" "$USERNAME"

# --- measure 1 and 2 -----------------------------------------------------------------------------------
SINGLE="http://127.0.0.1:$NGINX_SINGLE"
single_cookie=$(app_sign_in "$SINGLE")
warm "$SINGLE/ceiling"
measure ceiling "$SINGLE/ceiling"
measure_app single "$SINGLE" "$single_cookie"

warm -H "Cookie: $dj_cookie" "$DJ/success/"
measure django:/login "$DJ/login/"
check_page "$DJ/success/" "$dj_cookie" "$USERNAME"
measure django:/success "$DJ/success/" -H "Cookie: $dj_cookie"
check_page "$DJ/success/" "$dj_cookie" "$USERNAME"
if [ "${LOGINS:-}" = 1 ]; then
  # A fresh anonymous CSRF pair (the signed-in one was rotated by the login).
  anon="$RUN/django/anon.txt"
  DJANGO_CSRF_TOKEN=$(curl -s -c "$anon" "$DJ/login/" | csrf_form)
  DJANGO_CSRF_COOKIE=$(awk '$6 == "csrftoken" { print $7 }' "$anon")
  export DJANGO_CSRF_TOKEN DJANGO_CSRF_COOKIE
  # One account: Django has no login throttle to refuse parallel logins. A wrk timeout past the 2 s
  # default: Django's Argon2 defaults (100 MiB, p=8) queue logins longer than that.
  measure django:logins "$DJ/login/" --timeout 10s -s scripts/bench/django-login.lua
fi

# The production shape gets the machine to itself.
stop_pid "$single_pid"
stop_pid "$django_pid"

# --- 3. the production shape ---------------------------------------------------------------------------
# stack.sh's own stack (production mode, PostgreSQL, Redis sessions, instances on APP_PORT and
# APP_PORT2, the TLS nginx of nginx.conf on HTTPS_PORT, unused here); measured through the bench nginx's
# plain-HTTP upstream of both instances, so that only the stack behind nginx differs between columns.
stack_start_scaled "$RUN/prod" 2
stack_user "$USERNAME" "$PASSWORD"
if [ "${LOGINS:-}" = 1 ]; then login_accounts; fi
PROD="http://127.0.0.1:$NGINX_PROD"
prod_cookie=$(app_sign_in "$PROD")
measure_app prod "$PROD" "$prod_cookie"
stack_stop

# --- the table -----------------------------------------------------------------------------------------
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'; }
errors() { if [ "${ERR[$1]}" = 0 ]; then echo 0; else echo "**${ERR[$1]}**"; fi; }
cells() {  # KEY: req/s | p50 / p99 | errors
  if [ -n "${RPS[$1]:-}" ]; then echo "${RPS[$1]} | ${P50[$1]} / ${P99[$1]} | $(errors "$1")"; else echo "— | — | —"; fi
}
notes() {  # PREFIX ROW: the ratios the row is read against
  local p="$1" row="$2"
  case "$row" in
    /healthz) echo "$(ratio "${RPS[$p:/healthz]}" "${RPS[ceiling]}")× ceiling" ;;
    /success) echo "$(ratio "${RPS[$p:/success]}" "${RPS[$p:/healthz]}")× healthz, $(ratio "${RPS[$p:/success]}" "${RPS[django:/success]}")× Django /success" ;;
    '/success?render') echo "$(ratio "${RPS[$p:$row]}" "${RPS[$p:/success]}")× /success" ;;
    /notifications | /workflows | /settings/*)
      echo "$(ratio "${RPS[$p:$row]}" "${RPS[$p:/success]}")× /success, $(ratio "${RPS[$p:$row]}" "${RPS[$p:/success?render]}")× rendered /success" ;;
    *) echo "" ;;
  esac
}
app_rows=(/healthz /login /success "${PAGES[@]}")
if [ "${LOGINS:-}" = 1 ]; then app_rows+=(logins); fi
{
  echo "wrk -t1 -c16 -d$DURATION through plain-HTTP nginx on loopback (access_log off, upstream keepalive 32);"
  echo "$(date -u +%Y-%m-%d) · $(git rev-parse --short HEAD) · $(nproc) cores · latency in ms · errors: non-2xx/3xx answers, socket errors, nginx upstream errors."
  echo "Single: one instance, SQLite, sessions in SQLite. Production shape: two instances, PostgreSQL, sessions in Redis."
  echo "Django: 5.2 on uWSGI, 2 processes, sessions in SQLite (django.contrib.sessions.backends.db), Argon2."
  if [ "${LOGINS:-}" = 1 ]; then
    echo "Full logins: the app over 32 accounts, Argon2id 19 MiB t=2 p=1, one hash at a time per instance (cores - 1);"
    echo "Django over one account with its Argon2 defaults, 100 MiB t=2 p=8."
  fi
  echo
  echo "| Request | req/s | p50 / p99 | errors | ratio | prod req/s | prod p50 / p99 | prod errors | prod ratio |"
  echo "|---|---:|---:|---:|---|---:|---:|---:|---|"
  echo "| nginx constant page (ceiling) | $(cells ceiling) | | — | — | — | |"
  for row in "${app_rows[@]}"; do
    case "$row" in
      logins) label="POST /login (full logins, LOGINS=1)" ;;
      /healthz | /login) label="GET $row" ;;
      *) label="GET $row signed in" ;;
    esac
    echo "| $label | $(cells "single:$row") | $(notes single "$row") | $(cells "prod:$row") | $(notes prod "$row") |"
  done
  echo "| Django GET /login/ | $(cells django:/login) | | — | — | — | |"
  echo "| Django GET /success/ signed in | $(cells django:/success) | | — | — | — | |"
  if [ "${LOGINS:-}" = 1 ]; then
    echo "| Django POST /login/ (full logins, LOGINS=1) | $(cells django:logins) | | — | — | — | |"
  fi
} >"$RUN/table.md"
echo
cat "$RUN/table.md"
