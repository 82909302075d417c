#!/usr/bin/env bash
# Source it in a recipe after `set -euo pipefail`:   . ../utils/interrupt.sh
#
# Ctrl-C (SIGINT) or a scheduler's SIGTERM reaches the whole process group: the running `w2v2` command saves a
# checkpoint and exits 130 / 143, and with these traps the recipe waits for that, then exits 130 / 143 itself (bash
# runs a trap only after the foreground command has finished). Either way the stage's `touch .done` line never
# runs, so the next `run.sh` continues the stage (`--resume auto`) instead of skipping it.
trap 'echo "$(basename "$0"): interrupted (SIGINT); stages not marked done will run again" >&2; exit 130' INT
trap 'echo "$(basename "$0"): interrupted (SIGTERM); stages not marked done will run again" >&2; exit 143' TERM
