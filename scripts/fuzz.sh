#!/usr/bin/env bash
# Fuzzes every parser of untrusted input for a short while (see fuzz/README.md):
#   scripts/fuzz.sh [seconds-per-target]     (default 30)
# Installs cargo-fuzz if it is missing, builds the four targets once (AddressSanitizer, on the stable
# toolchain through RUSTC_BOOTSTRAP=1), seeds .run/fuzz/corpus/<target> from fuzz/seeds/<target>, runs
# each target for the given time and prints its executions. Exits non-zero if any target crashed,
# printing the input that did it (.run/fuzz/artifacts/<target>/) and how to replay it.
# FUZZ_TARGETS="login_form api_json" limits the run; FUZZ_SANITIZER=none builds without ASan.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
. scripts/env.sh

SECONDS_PER_TARGET=${1:-30}
CARGO_FUZZ_VERSION=0.13.2
SANITIZER=${FUZZ_SANITIZER:-address}
TARGETS=(${FUZZ_TARGETS:-login_form api_json webhook_headers workflow_definition})
RUN="$ROOT/.run/fuzz"
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
# cargo-fuzz passes nightly-only flags (-Zsanitizer, -Cpasses=sancov-module with its -Z options):
# the stable compiler accepts them with RUSTC_BOOTSTRAP=1, so CI needs no nightly toolchain.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$TARGET_DIR"

say() { printf '\n== %s\n' "$*"; }

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  say "cargo: installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

say "building the fuzz targets (sanitizer: $SANITIZER)"
start=$(date +%s)
# fuzz/Cargo.lock is committed with the workspace's versions: refuse to build if it would have to change.
cargo metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null
# 16 codegen units: a much shorter build on 2 cores for somewhat slower targets (see fuzz/README.md).
cargo fuzz build --sanitizer "$SANITIZER" --debug-assertions --codegen-units 16
echo "built in $(( $(date +%s) - start ))s"
BIN_DIR="$TARGET_DIR/$TRIPLE/release"

failed=()
summary=()
for t in "${TARGETS[@]}"; do
  corpus="$RUN/corpus/$t" artifacts="$RUN/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  cp -n fuzz/seeds/"$t"/* "$corpus"/ 2>/dev/null || true
  dict=(); [ -f "fuzz/dict/$t.dict" ] && dict=(-dict="fuzz/dict/$t.dict")
  say "fuzzing $t for ${SECONDS_PER_TARGET}s"
  log="$RUN/$t.log"
  set +e
  # -timeout: one input taking 10 s counts as a hang (a finding). Leak checks stay on.
  "$BIN_DIR/$t" "$corpus" "${dict[@]}" -artifact_prefix="$artifacts/" -max_total_time="$SECONDS_PER_TARGET" \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  line=$(printf '%-20s %12s execs %8s/s  coverage %6s  corpus %5s' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$(ls "$corpus" | wc -l)")
  crash=$(ls -t "$artifacts" 2>/dev/null | head -1)
  if [ "$rc" -ne 0 ]; then
    failed+=("$t")
    line="$line  FAILED (exit $rc)"
    grep -E '^(==[0-9]+==ERROR|thread .* panicked|SUMMARY)' -A3 "$log" | head -20 || true
    tail -5 "$log"
    if [ -n "$crash" ]; then
      echo
      echo "crashing input: $artifacts/$crash"
      echo "replay:  RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer $SANITIZER --debug-assertions --codegen-units 16 $t $artifacts/$crash"
      echo "    or:  $BIN_DIR/$t $artifacts/$crash"
      echo "shrink:  RUSTC_BOOTSTRAP=1 cargo fuzz tmin --sanitizer $SANITIZER --debug-assertions --codegen-units 16 $t $artifacts/$crash"
    fi
    echo "full log: $log"
  fi
  summary+=("$line")
done

say "fuzzing summary (${SECONDS_PER_TARGET}s per target)"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "FAILED: ${failed[*]} found a crash (see above)"
  exit 1
fi
echo "fuzz: ${#TARGETS[@]} targets, no crash"
