# Sourced by the other scripts: tool paths and the runtime settings of the release build.
# Cargo's output folder (CARGO_TARGET_DIR when set, so worktrees can build side by side); the site
# itself stays in $ROOT/target/site (cargo-leptos's site-root).
export TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
# The server binary the scripts run: the release build, or the quick build (run.sh, test.sh), whose
# server build.sh keeps in QUICK_BIN beside its hash.txt.
export SERVER_BIN="${SERVER_BIN:-$TARGET_DIR/release/server}"
export QUICK_BIN="$TARGET_DIR/quick-bin"
export PATH="$ROOT/end2end/node_modules/.bin:$HOME/.cargo/bin:$PATH"
export LEPTOS_SITE_ROOT="$ROOT/target/site"
export LEPTOS_HASH_FILES=true
export LEPTOS_ENV=PROD
