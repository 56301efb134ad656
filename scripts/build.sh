#!/usr/bin/env bash
# The release build, in three steps:
#   1. the crypto lab's WASM module (crates/crypto-wasm: opt-level 3, wasm-bindgen, wasm-opt -O3),
#      named by its content hash so nginx can cache it forever;
#   2. the app with cargo-leptos (server + hydrating WASM, lazy routes split into chunks), told
#      where that module lives;
#   3. the module copied into the site under /pkg/crypto-<hash>/, and a .gz beside every asset.
# `--quick` builds the same app with the light profiles of the `quick` project (Cargo.toml), for
# README command 1 and the browser tests; the server is then $QUICK_BIN/server instead of
# $TARGET_DIR/release/server. Nothing is rebuilt when no input changed since the last build of the
# same kind (README command 1 restarts in seconds).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
. scripts/env.sh

project=implementation-eng
[ "${1:-}" = "--quick" ] && project=quick
# The quick server is kept beside its hash.txt in $QUICK_BIN (env.sh): `cargo test` rewrites
# target/debug/server with a build that lacks what cargo-leptos compiles in (the WASM file names), and
# its pages would not hydrate.
# Under clippy-driver (test.sh's lint gate), a build counts only for a linted build of the same inputs;
# a linted build counts for a plain one too.
stamp="$TARGET_DIR/.build-$project${RUSTC_WORKSPACE_WRAPPER:+-linted}.stamp"
inputs=(Cargo.toml Cargo.lock app crates frontend server style public scripts/build.sh)
if [ -f "$stamp" ] && { [ "$project" != quick ] || [ -x "$QUICK_BIN/server" ]; } \
  && [ -z "$(find "${inputs[@]}" -newer "$stamp" -print -quit)" ]; then
  echo "build ($project): up to date"
  exit 0
fi
rm -f "$TARGET_DIR"/.build-*.stamp   # the site folder is shared: the other kind's build is gone now
started=$(date +%s)
# Taken before building, so an edit made during the build is seen by the next one.
mkdir -p "$TARGET_DIR"
touch "$stamp.new"

OUT="$TARGET_DIR/crypto-wasm"
cargo build -p crypto-wasm --lib --target wasm32-unknown-unknown --profile crypto-wasm-release
module="$TARGET_DIR/wasm32-unknown-unknown/crypto-wasm-release/crypto_wasm.wasm"
# wasm-bindgen and wasm-opt (slow under node) only when the module changed.
if [ ! -f "$OUT/.source.sha256" ] || ! sha256sum --status -c "$OUT/.source.sha256"; then
  rm -rf "$OUT" && mkdir -p "$OUT"
  wasm-bindgen --target web --no-typescript --out-dir "$OUT" "$module"
  wasm-opt -O3 --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-reference-types --enable-multivalue \
    "$OUT/crypto_wasm_bg.wasm" -o "$OUT/crypto_wasm_bg.wasm"
  sha256sum "$module" >"$OUT/.source.sha256"
fi
cp crates/crypto-wasm/worker.js "$OUT/"
hash=$(cat "$OUT/crypto_wasm.js" "$OUT/crypto_wasm_bg.wasm" "$OUT/worker.js" | sha256sum | cut -c1-16)

# --split: the lazy routes (#[lazy_route]: the crypto lab, the dashboard) become WASM chunks of their own.
CRYPTO_WASM_BASE="/pkg/crypto-$hash/" cargo leptos build --release --split --project "$project"

rm -rf target/site/pkg/crypto-*
cp -r "$OUT" "target/site/pkg/crypto-$hash"
rm -f "target/site/pkg/crypto-$hash/.source.sha256"
# Precompressed copies for nginx's gzip_static (the names are content-hashed, so they never go stale).
find target/site/pkg -type f \( -name '*.js' -o -name '*.wasm' -o -name '*.css' -o -name '*.json' \) \
  -exec gzip -9 -k -f {} \;
if [ "$project" = quick ]; then
  rm -rf "$QUICK_BIN" && mkdir -p "$QUICK_BIN"
  cp "$TARGET_DIR/debug/server" "$TARGET_DIR/debug/hash.txt" "$QUICK_BIN/"
fi
mv "$stamp.new" "$stamp"
[ -z "${RUSTC_WORKSPACE_WRAPPER:-}" ] || cp -p "$stamp" "$TARGET_DIR/.build-$project.stamp"
echo "crypto module: /pkg/crypto-$hash/; build ($project) took $(( $(date +%s) - started )) s"
