#!/usr/bin/env bash
# Installs what building and testing Implementation-Eng needs, skipping whatever is already there.
# Sources: Debian packages, crates.io, npm. Nothing is downloaded from anywhere else.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LEPTOS_VERSION=0.3.10
# Must equal the wasm-bindgen version pinned in Cargo.toml.
WASM_BINDGEN_VERSION=$(sed -n 's/^wasm-bindgen = "=\(.*\)"/\1/p' Cargo.toml)

say() { printf '\n== %s\n' "$*"; }

# --- Debian packages -------------------------------------------------------------------------------
APT_PACKAGES=(mold nginx chromium chromium-driver sqlite3 wrk brotli openssl curl ca-certificates redis-server postgresql testssl.sh)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "apt: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Rust toolchain pieces -------------------------------------------------------------------------
export PATH="$HOME/.cargo/bin:$PATH"
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "rustup: adding wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

if ! cargo leptos --version 2>/dev/null | grep -q "$CARGO_LEPTOS_VERSION"; then
  say "cargo: installing cargo-leptos $CARGO_LEPTOS_VERSION (about 15 minutes on 2 cores)"
  # Thin settings: the crate's own fat-LTO profile doubles the build time for no benefit here.
  CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked --features no_downloads
fi

if ! wasm-bindgen --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then
  say "cargo: installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --locked --force
fi

# --- npm: Playwright and binaryen's wasm-opt (Debian's binaryen is too old for current WASM) --------
if [ ! -x end2end/node_modules/.bin/wasm-opt ] || [ ! -x end2end/node_modules/.bin/playwright ] \
   || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
  say "npm: installing end2end dependencies"
  (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
fi

# --- PyPI: one venv for the Python examples and the test servers (a real SMTP server, a push service) --
VENV=.run/venv
if [ ! -x "$VENV/bin/python" ] || [ examples/python/requirements.txt -nt "$VENV/.installed" ] \
   || [ scripts/requirements.txt -nt "$VENV/.installed" ]; then
  say "pip: the Python venv (.run/venv)"
  mkdir -p .run
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r examples/python/requirements.txt -r scripts/requirements.txt
  touch "$VENV/.installed"
fi

say "setup complete"
