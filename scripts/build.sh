#!/usr/bin/env bash
# The release build, in three steps:
#   1. the crypto lab's WASM module (crates/crypto-wasm: opt-level 3, wasm-bindgen, wasm-opt -O3),
#      named by its content hash so nginx can cache it forever;
#   2. the app with cargo-leptos (server + hydrating WASM, lazy routes split into chunks), told
#      where that module lives;
#   3. the module copied into the site under /pkg/crypto-<hash>/, and a .gz beside every asset.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
. scripts/env.sh

OUT="$TARGET_DIR/crypto-wasm"
cargo build -p crypto-wasm --lib --target wasm32-unknown-unknown --profile crypto-wasm-release
rm -rf "$OUT" && mkdir -p "$OUT"
wasm-bindgen --target web --no-typescript --out-dir "$OUT" \
  "$TARGET_DIR/wasm32-unknown-unknown/crypto-wasm-release/crypto_wasm.wasm"
wasm-opt -O3 --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types --enable-multivalue \
  "$OUT/crypto_wasm_bg.wasm" -o "$OUT/crypto_wasm_bg.wasm"
cp crates/crypto-wasm/worker.js "$OUT/"
hash=$(cat "$OUT/crypto_wasm.js" "$OUT/crypto_wasm_bg.wasm" "$OUT/worker.js" | sha256sum | cut -c1-16)

# --split: the lazy routes (#[lazy_route]: the crypto lab, the dashboard) become WASM chunks of their own.
CRYPTO_WASM_BASE="/pkg/crypto-$hash/" cargo leptos build --release --split

rm -rf target/site/pkg/crypto-*
cp -r "$OUT" "target/site/pkg/crypto-$hash"
# Precompressed copies for nginx's gzip_static (the names are content-hashed, so they never go stale).
find target/site/pkg -type f \( -name '*.js' -o -name '*.wasm' -o -name '*.css' -o -name '*.json' \) \
  -exec gzip -9 -k -f {} \;
echo "crypto module: /pkg/crypto-$hash/"
