#!/usr/bin/env bash
# Done-markers for recipe steps. Source it after parse_options.sh, once $dir (the output directory) is set:
#
#   . ../utils/stages.sh
#   if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
#     for lang in $langs; do
#       todo 3 "$lang" || continue      # finished before: skipped (and logged)
#       w2v2 finetune ...
#       mark_done 3 "$lang"            # only reached when the step succeeded (set -e)
#     done
#   fi
#
# A finished step is skipped on re-run, so re-running a recipe is a no-op; a step that failed or was interrupted
# has no marker and runs again (training continues with --resume auto). Selecting one stage alone
# (--stage N --stop-stage N) runs its steps again even when marked done, e.g. to re-decode with other settings.
# Markers: $dir/.done/STAGE[.KEY].

# todo STAGE [KEY]: true when the step must run
# shellcheck disable=SC2154  # stage, stop_stage and dir are the recipe's
todo() {
  local name=$1${2:+.$2}
  if [ "$stage" -eq "$stop_stage" ] || [ ! -f "$dir/.done/$name" ]; then
    return 0
  fi
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%d %H:%M:%S') (${fname}:${BASH_LINENO[0]}) Stage $1${2:+ ($2)}: done before, skipped" \
    "(--stage $1 --stop-stage $1 runs it again)"
  return 1
}

# mark_done STAGE [KEY]: record that the step finished
mark_done() {
  mkdir -p "$dir/.done"
  touch "$dir/.done/$1${2:+.$2}"
}
