#!/usr/bin/env bash
# Source it in a recipe after `set -euo pipefail`:   . ../utils/interrupt.sh
#
# Ctrl-C (SIGINT) or a scheduler's SIGTERM reaches the whole process group: the running `w2v2` command saves a
# checkpoint and exits 130 / 143, and with these traps the recipe waits for that, then exits 130 / 143 itself (bash
# runs a trap only after the foreground command has finished). Either way the stage's `touch .done` line never
# runs, so the next `run.sh` continues the stage (`--resume auto`) instead of skipping it.
# The message comes from an EXIT trap keyed on the status, because two paths lead here: bash's own INT/TERM trap,
# and `set -e` stopping the recipe on the command's 130 / 143 before a pending signal trap has run.
_interrupted() {
  local rc=$1 name
  case $rc in 130) name=SIGINT ;; 143) name=SIGTERM ;; *) return 0 ;; esac
  echo "$(basename "$0"): interrupted ($name); stages not marked done will run again" >&2
}
trap '_interrupted $?' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
