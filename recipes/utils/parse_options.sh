#!/usr/bin/env bash
# Kaldi-style option parser for recipe scripts. Source it AFTER declaring defaults:
#
#   stage=0        # first stage to run
#   nj=4           # parallel jobs
#   . ../utils/parse_options.sh
#
# Then `run.sh --stage 3 --stop-stage 4 --nj 8` overrides those variables. An option must name an
# existing variable (typos are an error, listing the valid ones); `--help` prints the defaults with
# their comments, read from the calling script's header block.

_w2v2_script="${BASH_SOURCE[1]:-$0}"
[ -f "$_w2v2_script" ] || _w2v2_script="$(basename "$_w2v2_script")"  # the recipe may have cd'ed to its dir
_w2v2_usage() {
  echo "Usage: $(basename "$_w2v2_script") [options]"
  echo "Options (default, then meaning):"
  local line re='^([a-z_][a-z0-9_]*)=("[^"]*"|[^ ]*)[ ]+# (.*)$'
  while IFS= read -r line; do
    if [[ $line =~ $re ]]; then
      printf '  --%-20s %-22s %s\n' "${BASH_REMATCH[1]//_/-}" "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}"
    fi
  done < "$_w2v2_script"
}
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) _w2v2_usage; exit 0 ;;
    --*=*) _name="${1%%=*}"; _value="${1#*=}"; shift ;;
    --*) _name="$1"; [ $# -ge 2 ] || { echo "$(basename "$_w2v2_script"): option $1 needs a value" >&2; exit 1; }; _value="$2"; shift 2 ;;
    *) break ;;
  esac
  _var="${_name#--}"; _var="${_var//-/_}"
  if ! declare -p "$_var" >/dev/null 2>&1; then
    echo "$(basename "$_w2v2_script"): unknown option $_name" >&2
    _w2v2_usage >&2
    exit 1
  fi
  printf -v "$_var" '%s' "$_value"
done
unset _name _value _var
