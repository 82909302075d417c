#!/usr/bin/env bash
# subset_speakers.sh SRC DST NUM_SPEAKERS MINUTES SEED — a labelled subset from few voices, as Libri-light's
# 10 min / 1 h splits are: NUM_SPEAKERS speakers drawn (seeded) from manifest SRC.tsv, then their utterances
# in a seeded order until MINUTES of audio, written as DST.tsv / DST.wrd / DST.ltr (rows keep their order).
# NUM_SPEAKERS "all" takes every speaker, MINUTES "all" every one of their utterances.
# The speaker of a row is the first directory of its path (LibriSpeech: SPK/CHAP/SPK-CHAP-UTT.flac).
set -euo pipefail
[ $# -eq 5 ] || { echo "usage: $0 SRC_PREFIX DST_PREFIX NUM_SPEAKERS MINUTES SEED" >&2; exit 1; }
src=$1; dst=$2; nspk=$3; minutes=$4; seed=$5
[ -f "$src.tsv" ] || { echo "$0: no manifest $src.tsv" >&2; exit 1; }
python3 "$(dirname "$0")/subset.py" speakers "$src" "$dst" "$nspk" "$minutes" "$seed"
