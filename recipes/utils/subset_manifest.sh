#!/usr/bin/env bash
# subset_manifest.sh SRC DST N SEED — keeps N random rows (seeded) of manifest SRC.tsv, with the same rows of
# SRC.wrd / SRC.ltr when present, written as DST.tsv / DST.wrd / DST.ltr (rows stay in their original order).
# Like Kaldi's utils/subset_data_dir.sh for fairseq manifests.
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: $0 SRC_PREFIX DST_PREFIX N SEED" >&2; exit 1; }
src=$1; dst=$2; n=$3; seed=$4
[ -f "$src.tsv" ] || { echo "$0: no manifest $src.tsv" >&2; exit 1; }
python3 "$(dirname "$0")/subset.py" rows "$src" "$dst" "$n" "$seed"
