# Sourced by test.sh. `say NAME` ends the stage running and starts the next: each stage's duration is
# printed when it ends, and all of them as a table on exit, pass or fail (also kept in
# .run/stage-times.txt). Cleanups registered with `at_exit` run first, from the one EXIT trap.
STAGE_NAMES=()
STAGE_SECS=()
STAGE=""
STAGE_START=0
RUN_START=$(date +%s)
EXIT_HOOKS=()

at_exit() {
  local h
  for h in "${EXIT_HOOKS[@]}"; do [ "$h" = "$1" ] && return 0; done
  EXIT_HOOKS+=("$1")
}

stage_end() {
  [ -n "$STAGE" ] || return 0
  local secs=$(($(date +%s) - STAGE_START))
  STAGE_NAMES+=("$STAGE")
  STAGE_SECS+=("$secs")
  printf -- '-- %s: %d:%02d\n' "$STAGE" $((secs / 60)) $((secs % 60))
  STAGE=""
}

say() {
  stage_end
  STAGE="$*"
  STAGE_START=$(date +%s)
  printf '\n== %s\n' "$*"
}

stages_summary() {
  local rc="$1" i total=$(($(date +%s) - RUN_START))
  {
    printf '\n== stage durations (%s)\n' "$([ "$rc" = 0 ] && echo passed || echo "FAILED, exit $rc")"
    for i in "${!STAGE_NAMES[@]}"; do
      printf '%4d:%02d  %s\n' $((STAGE_SECS[i] / 60)) $((STAGE_SECS[i] % 60)) "${STAGE_NAMES[i]}"
    done
    printf '%4d:%02d  total\n' $((total / 60)) $((total % 60))
  } | tee "${ROOT:-.}/.run/stage-times.txt"
}

_stages_on_exit() {
  local rc=$? h
  for h in "${EXIT_HOOKS[@]}"; do "$h" || true; done
  stage_end
  mkdir -p "${ROOT:-.}/.run"
  stages_summary "$rc"
  exit "$rc"
}
trap _stages_on_exit EXIT
