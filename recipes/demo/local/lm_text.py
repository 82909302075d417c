#!/usr/bin/env python3
"""Extra LM training text for the demo: normalised sentences from the generator's *train* pool.

    python3 local/lm_text.py exp/demo/lm/extra.txt --lang en --sentences 20000 --seed 42 \
        --exclude exp/demo/data/test-clean.wrd --exclude exp/demo/data/dev-clean.wrd

Sentences of dev/test pools are never produced (see w2v2cli.data.sentences.sentence_pool); any line of an
--exclude file is also dropped, so the LM never sees test text.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

from w2v2cli.config import atomic_write_text
from w2v2cli.data.sentences import SentenceGenerator
from w2v2cli.data.text import normalize_text


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--lang", default="en")
    p.add_argument("--sentences", type=int, default=20000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--exclude", type=Path, action="append", default=[])
    args = p.parse_args()
    banned = {line.strip() for f in args.exclude for line in f.read_text(encoding="utf-8").splitlines()}
    gen = SentenceGenerator(args.lang, seed=args.seed + 1000)  # other seed than the corpus: new sentences
    lines = [normalize_text(s, args.lang) for s in itertools.islice(gen.unique("train"), args.sentences)]
    lines = [l for l in lines if l not in banned]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, "".join(l + "\n" for l in lines))
    print(f"{args.out}: {len(lines)} sentences ({args.lang})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
