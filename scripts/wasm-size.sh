#!/usr/bin/env bash
# Prints raw, gzip -9 and brotli -q 11 sizes of the built WASM: the app's (loaded by every page) and
# the crypto lab's module (loaded by /crypto only). Run after scripts/build.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
printf '%-46s %10s %10s %10s\n' file raw gzip brotli
for f in target/site/pkg/*.wasm target/site/pkg/crypto-*/*.wasm; do
  printf '%-46s %10d %10d %10d\n' "$f" "$(stat -c %s "$f")" "$(gzip -9c "$f" | wc -c)" "$(brotli -q 11 -c "$f" | wc -c)"
done
