#!/usr/bin/env bash
# README command 2: install what is missing, then run every test:
#   0. the gates: rustfmt, and clippy -D warnings on the builds themselves (WASM and native);
#   1. cargo test for the workspace (unit, router and CLI tests against real SQLite files; the
#      notification pipeline's tests start their own redis-server and kill real processes), and the
#      crypto known-answer tests again as WASM in headless Chromium;
#   2. the app built with the light `quick` profiles (scripts/build.sh --quick, first, as the WASM lint
#      gate), served behind nginx (this
#      repository's nginx.conf, TLS, loopback ports) with Redis and the webhook sink beside it, and the
#      Playwright suite in Debian's Chromium through it;
#   3. the Python examples against the same live server;
#   4. the security headers and cookie flags of every route, directly and through nginx,
#      testssl.sh against nginx's TLS, and
#      nginx's login rate limit; cargo fuzz on every parser of untrusted input (20 s a target);
#   5. the production shape: PostgreSQL, one Redis for sessions and the queue, two instances behind
#      nginx (sessions on both, logout across, an instance killed, SIGTERM during a run).
# The cargo tests run every database test on SQLite and on a throwaway PostgreSQL (Debian's), and the
# router suites a second time with PostgreSQL as the app database.
# Every server it starts is stopped on exit, pass or fail; each stage's duration is printed as it ends
# and as a table at the end (scripts/stages.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
mkdir -p "$ROOT/.run"
. scripts/stages.sh
say "setup: tools (skips what is installed)"
scripts/setup.sh
. scripts/env.sh

# Disk is the scarce resource on CI machines (a run once died at 15 min with "No space left on
# device"): say what there is, and on a cold target skip rustc's incremental caches, which only pay
# off on the next build and would cost several GB here. The summary says what the run left behind.
df -h "$ROOT" | tail -1 | awk '{print "disk: " $4 " free of " $2 " before the build"}'
if [ ! -d "$TARGET_DIR/debug/deps" ]; then
  export CARGO_INCREMENTAL=0
  echo "cold target: CARGO_INCREMENTAL=0"
fi
disk_report() {
  df -h "$ROOT" | tail -1 | awk '{print "disk: " $4 " free at the end"}'
  du -sh "$TARGET_DIR" 2>/dev/null | awk '{print "target/: " $1}'
}
at_exit disk_report

RUN="$ROOT/.run/e2e"
. scripts/stack.sh

say "gate: cargo fmt --check"
cargo fmt --all --check
cargo fmt --manifest-path fuzz/Cargo.toml --check

# The lint gates ride on the builds: clippy-driver wraps rustc for the workspace's own crates (what
# `cargo clippy -- -D warnings` does, but compiling the code as well), so the dependencies are compiled
# once instead of checked and then compiled, and a lint fails the build before any test runs.
# (CLIPPY_ARGS is cargo-clippy's own way of passing lint flags to the driver.)
clippy_build() {
  RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver)" CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__" "$@"
}

say "gate: clippy -D warnings on the WASM crates and the server, building the app (cargo leptos, quick profiles)"
# The app as the browser tests run it: the hydrating WASM (app + frontend, and crypto-wasm) and the
# server (kept in quick-bin/: the test build below writes target/debug/server too).
clippy_build scripts/build.sh --quick
export SERVER_BIN="$QUICK_BIN/server"

if [ -z "${SKIP_CARGO_TEST:-}" ]; then  # set it to iterate on the browser suite only
  say "PostgreSQL for the database tests"
  pg_start "$ROOT/.run/pg-tests" 15441
  at_exit pg_stop
  export APP_TEST_REQUIRE_POSTGRES=1   # a missing PostgreSQL fails the run instead of skipping it

  say "gate: clippy -D warnings on every native crate and target, building the tests"
  clippy_build cargo test --workspace --exclude frontend --no-run

  say "cargo test (workspace; database tests on SQLite and PostgreSQL)"
  clippy_build cargo test --workspace --exclude frontend --no-fail-fast

  say "router suites again, with PostgreSQL as the app database"
  # The same package selection as above, so nothing is rebuilt (`-p server` would resolve features for
  # that package alone and compile a second copy of the server); every crate's tests are one binary
  # named `it`, and the filter picks the server's suites from them.
  (cd "$ROOT/server" && APP_TEST_DATABASE=postgres clippy_build cargo test --workspace --exclude frontend --test it -- server::)
  pg_stop

  say "crypto known-answer tests compiled to WASM, in headless Chromium"
  CHROMEDRIVER=/usr/bin/chromedriver CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
    cargo test -p crypto --features kat --target wasm32-unknown-unknown --test wasm_known_answers
fi

if [ -z "${SKIP_FUZZ:-}" ]; then
  # Every parser of untrusted input, 20 s a target from the seed corpora (fuzz/README.md). Without
  # AddressSanitizer here: with it the cold build instruments SQLite's C code too and takes several
  # times longer; the targets are safe Rust, and `scripts/fuzz.sh 600` runs them with ASan.
  say "fuzzing: login form, API JSON bodies, webhook signature headers, workflow definitions"
  FUZZ_SANITIZER="${FUZZ_SANITIZER:-none}" scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
fi

say "starting Redis, the webhook sink, the app and nginx on loopback"
# A short retry base so the end-to-end tests see dead letters within seconds.
export APP_NOTIFY__RETRY__BASE_MS=50
# Webhooks follow Svix's 27-hour schedule by default; the stack's receivers answer within the test.
export APP_NOTIFY__WEBHOOK__RETRY__SCHEDULE_MS=50,100,200,400,800
stack_start "$RUN"
for user in e2e-alice e2e-bob e2e-carol e2e-dave e2e-erin e2e-frank e2e-gina e2e-hank e2e-ivan e2e-judy e2e-kim e2e-python e2e-headers e2e-olga e2e-pia; do
  stack_user "$user" "password-of-$user"
done

say "Playwright (Debian Chromium, through nginx)"
export E2E_BASE_URL="https://127.0.0.1:$HTTPS_PORT"
export E2E_HTTP_URL="http://127.0.0.1:$HTTP_PORT"
(cd end2end && npx playwright test)

say "Python examples against the live server (through nginx)"
VENV="$ROOT/.run/venv"   # made by scripts/setup.sh
IMPLEMENTATION_ENG_URL="https://127.0.0.1:$HTTPS_PORT" SSL_CERT_FILE="$RUN/nginx/certs/server.crt" \
  "$VENV/bin/python" -m unittest -v examples/python/test_examples.py

say "Python integration scripts (REST API, webhooks out and in, workflows) against the live server"
api_token=$("$SERVER_BIN" token create e2e-python --name python-tests --scopes all 2>/dev/null)
readonly_token=$("$SERVER_BIN" token create e2e-python --name python-readonly \
  --scopes notifications:read,webhooks:read,workflows:read 2>/dev/null)
IMPLEMENTATION_ENG_URL="https://127.0.0.1:$HTTPS_PORT" SSL_CERT_FILE="$RUN/nginx/certs/server.crt" \
  IMPLEMENTATION_ENG_TOKEN="$api_token" IMPLEMENTATION_ENG_READONLY_TOKEN="$readonly_token" \
  IMPLEMENTATION_ENG_REQUIRE_LIVE=1 python3 -m unittest -v examples/python/test_integrations.py

say "schemathesis against the OpenAPI document (no 5xx; status codes, content types, headers and bodies as documented)"
ST_VENV="$ROOT/.run/st-venv"
SCHEMATHESIS_VERSION=4.32.5
if ! "$ST_VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  python3 -m venv "$ST_VENV"
  "$ST_VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
# Not checked: "schema-valid request rejected" (the API refuses some schema-valid bodies on purpose,
# e.g. a webhook URL whose host does not resolve) and TRACE (nginx refuses it before the app).
"$ST_VENV/bin/schemathesis" run "https://127.0.0.1:$HTTPS_PORT/api/v1/openapi.json" \
  -H "Authorization: Bearer $api_token" --tls-verify "$RUN/nginx/certs/server.crt" --max-examples 25 \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance

say "security headers and cookie flags on every route, directly and through nginx"
APP_URL="http://127.0.0.1:$APP_PORT" \
  NGINX_URL="https://127.0.0.1:$HTTPS_PORT" NGINX_HTTP_URL="http://127.0.0.1:$HTTP_PORT" \
  SSL_CERT_FILE="$RUN/nginx/certs/server.crt" HEADERS_USER=e2e-headers HEADERS_PASSWORD=password-of-e2e-headers \
  python3 -m unittest -v deploy/tests/test_security_headers.py

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

say "nginx TLS: testssl.sh (Mozilla intermediate profile; nothing vulnerable)"
scripts/tls-check.sh "https://127.0.0.1:$HTTPS_PORT" "$RUN/testssl"

say "deploy/systemd: systemd-analyze verify"
scripts/verify-units.sh

say "scale-out: PostgreSQL, Redis, two instances behind nginx"
stack_stop
STACK_NO_APPS=1 stack_start_scaled "$ROOT/.run/scale" 2
proto=$(curl -sk --http2 -o /dev/null -w '%{http_version}' "https://127.0.0.1:$HTTPS_PORT/login")
[ "$proto" = 2 ] || { echo "FAILED: nginx answered over HTTP/$proto, not HTTP/2"; exit 1; }
echo "nginx: HTTP/2 over TLS"
RUN_DIR="$ROOT/.run/scale" BASE_URL="https://127.0.0.1:$HTTPS_PORT" \
  SSL_CERT_FILE="$ROOT/.run/scale/nginx/certs/server.crt" APP_PORT="$APP_PORT" APP_PORT2="$APP_PORT2" \
  SINK_URL="http://127.0.0.1:$SINK_PORT" python3 -m unittest -v deploy/tests/test_scale_out.py
