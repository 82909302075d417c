#!/usr/bin/env bash
# subset_manifest.sh SRC DST N SEED — keeps N random rows (seeded) of manifest SRC.tsv, with the same rows of
# SRC.wrd / SRC.ltr when present, written as DST.tsv / DST.wrd / DST.ltr (rows stay in their original order).
# Like Kaldi's utils/subset_data_dir.sh for fairseq manifests.
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: $0 SRC_PREFIX DST_PREFIX N SEED" >&2; exit 1; }
src=$1; dst=$2; n=$3; seed=$4
[ -f "$src.tsv" ] || { echo "$0: no manifest $src.tsv" >&2; exit 1; }
python3 - "$src" "$dst" "$n" "$seed" <<'PY'
import os, random, sys
src, dst, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with open(src + ".tsv", encoding="utf-8") as f:
    root, *rows = f.read().splitlines()
if n > len(rows):
    sys.exit(f"subset_manifest.sh: asked for {n} rows but {src}.tsv has {len(rows)} rows")
keep = sorted(random.Random(seed).sample(range(len(rows)), n))
outputs = {"tsv": [root] + [rows[i] for i in keep]}
for ext in ("wrd", "ltr"):
    if os.path.exists(f"{src}.{ext}"):
        with open(f"{src}.{ext}", encoding="utf-8") as f:
            labels = f.read().splitlines()
        if len(labels) != len(rows):
            sys.exit(f"subset_manifest.sh: {src}.{ext} has {len(labels)} lines, {src}.tsv has {len(rows)} rows")
        outputs[ext] = [labels[i] for i in keep]
for ext, lines in outputs.items():
    tmp = f"{dst}.{ext}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, f"{dst}.{ext}")
PY
