#!/usr/bin/env bash
# Checks the systemd units in deploy/systemd with `systemd-analyze verify` (syntax, known directives,
# dependencies, executables). The units name /srv/implementation-eng; here that prefix is a scratch folder
# holding the release binary, so the check runs on any machine. Prints nothing and exits 0 when clean.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/srv/bin" "$scratch/units"
ln -s "${SERVER_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/server}" "$scratch/srv/bin/server"
for f in "$ROOT"/deploy/systemd/*.service "$ROOT"/deploy/systemd/*.target; do
  sed "s|/srv/implementation-eng|$scratch/srv|g" "$f" >"$scratch/units/$(basename "$f")"
done
cd "$scratch/units"
# Templates are verified through an instance name.
out=$(systemd-analyze verify --man=no implementation-eng@3000.service implementation-eng-worker@1.service \
  implementation-eng-migrate.service implementation-eng-nginx.service implementation-eng.target 2>&1 \
  | grep -v "Unit implementation-eng@3001.service not found" || true)
if [ -n "$out" ]; then
  echo "$out"; echo "FAILED: systemd-analyze verify found problems in deploy/systemd"; exit 1
fi
echo "deploy/systemd: systemd-analyze verify clean"
