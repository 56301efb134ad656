#!/usr/bin/env bash
# Refreshes mockups/screenshots/ (the real pages beside their mockups in mockups/README.md): runs the
# release build behind nginx and the Playwright screenshot spec with UPDATE_SCREENSHOTS=1.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
. scripts/env.sh
. scripts/stack.sh
scripts/build.sh
stack_start "$ROOT/.run/screenshots"
stack_user e2e-carol password-of-e2e-carol
mkdir -p mockups/screenshots
(cd end2end && E2E_BASE_URL="https://127.0.0.1:$HTTPS_PORT" UPDATE_SCREENSHOTS=1 npx playwright test screenshots.spec.ts)
echo "updated: $(ls mockups/screenshots | tr '\n' ' ')"
