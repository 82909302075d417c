#!/usr/bin/env bash
# log MESSAGE: prints a time-stamped line naming the calling recipe, as icefall's run.sh does.
log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%d %H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}
