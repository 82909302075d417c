#!/usr/bin/env bash
# subset_speakers.sh SRC DST NUM_SPEAKERS MINUTES SEED — a labelled subset from few voices, as Libri-light's
# 10 min / 1 h splits are: NUM_SPEAKERS speakers drawn (seeded) from manifest SRC.tsv, then their utterances
# in a seeded order until MINUTES of audio, written as DST.tsv / DST.wrd / DST.ltr (rows keep their order).
# The speaker of a row is the first directory of its path (LibriSpeech: SPK/CHAP/SPK-CHAP-UTT.flac).
set -euo pipefail
[ $# -eq 5 ] || { echo "usage: $0 SRC_PREFIX DST_PREFIX NUM_SPEAKERS MINUTES SEED" >&2; exit 1; }
src=$1; dst=$2; nspk=$3; minutes=$4; seed=$5
[ -f "$src.tsv" ] || { echo "$0: no manifest $src.tsv" >&2; exit 1; }
python3 - "$src" "$dst" "$nspk" "$minutes" "$seed" <<'PY'
import os, random, sys
src, dst, nspk, minutes, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
with open(src + ".tsv", encoding="utf-8") as f:
    root, *rows = f.read().splitlines()
speaker = [r.split("\t")[0].split("/")[0] for r in rows]
speakers = sorted(set(speaker))
if nspk > len(speakers):
    sys.exit(f"subset_speakers.sh: asked for {nspk} speakers but {src}.tsv has {len(speakers)}")
rng = random.Random(seed)
chosen = set(rng.sample(speakers, nspk))
order = [i for i in range(len(rows)) if speaker[i] in chosen]
rng.shuffle(order)
keep, total = [], 0.0
for i in order:
    if total >= minutes * 60:
        break
    keep.append(i)
    total += int(rows[i].split("\t")[1]) / 16000
keep.sort()
outputs = {"tsv": [root] + [rows[i] for i in keep]}
for ext in ("wrd", "ltr"):
    if os.path.exists(f"{src}.{ext}"):
        with open(f"{src}.{ext}", encoding="utf-8") as f:
            labels = f.read().splitlines()
        if len(labels) != len(rows):
            sys.exit(f"subset_speakers.sh: {src}.{ext} has {len(labels)} lines, {src}.tsv has {len(rows)} rows")
        outputs[ext] = [labels[i] for i in keep]
for ext in ("wrd", "ltr", "tsv"):  # the manifest last: its presence means the subset is complete
    if ext in outputs:
        tmp = f"{dst}.{ext}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\n".join(outputs[ext]) + "\n")
        os.replace(tmp, f"{dst}.{ext}")
print(f"{dst}.tsv: {len(keep)} utterances, {total / 60:.1f} min from {nspk} speakers "
      f"({', '.join(sorted(chosen))})", file=sys.stderr)
PY
