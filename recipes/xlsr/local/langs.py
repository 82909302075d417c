#!/usr/bin/env python3
"""Where each language of the XLSR recipe comes from: a Common Voice folder or an MLS folder under CORPUS.

    python3 local/langs.py CORPUS KIND LANG[:cv|:mls] ...     # KIND: auto | cv | mls (for LANG without a suffix)

Prints one line per language: `TAG KIND LANG EXT FOLDER` (TAG = cv_LANG or mls_LANG, the recipe's unit name; EXT the
audio extension; FOLDER last, so it may contain spaces).
Common Voice: CORPUS/LANG/ with clips/ and train.tsv. MLS: CORPUS/mls_LANGUAGE/ (FLAC) or CORPUS/mls_LANGUAGE_opus/,
LANGUAGE the English name of the code (de -> german; the table is w2v2cli.data.corpora.MLS_LANGS). With KIND auto
a language found in both is an error asking for LANG:cv or LANG:mls; a language found in neither names both places.
"""

from __future__ import annotations

import sys
from pathlib import Path

from w2v2cli.data.corpora import MLS_LANGS


def find(corpus: Path, lang: str, kind: str) -> tuple[str, Path, str]:
    cv = corpus / lang
    cv_ok = (cv / "clips").is_dir() and (cv / "train.tsv").is_file()
    names = [name for name, code in MLS_LANGS.items() if code == lang]
    mls = [p for name in names for p in (corpus / f"mls_{name}", corpus / f"mls_{name}_opus") if p.is_dir()]
    if kind == "auto":
        if cv_ok and mls:
            raise ValueError(f"{lang}: both a Common Voice folder ({cv}) and an MLS folder ({mls[0]}); "
                             f"write {lang}:cv or {lang}:mls in --langs")
        kind = "cv" if cv_ok else "mls" if mls else ""
    if kind == "cv" and cv_ok:
        return "cv", cv, "mp3"
    if kind == "mls" and mls:
        return "mls", mls[0], "opus" if mls[0].name.endswith("_opus") else "flac"
    mls_place = f"{corpus}/mls_{names[0]}" if names else f"no MLS language has the code {lang!r}"
    want = {"cv": f"a Common Voice folder {cv} (clips/, train.tsv)", "mls": f"an MLS folder {mls_place}",
            "": f"a Common Voice folder {cv} (clips/, train.tsv) or an MLS folder {mls_place}"}[kind]
    raise ValueError(f"{lang}: no {want}")


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] not in ("auto", "cv", "mls"):
        print("usage: langs.py CORPUS auto|cv|mls LANG[:cv|:mls] ...", file=sys.stderr)
        return 1
    corpus, default = Path(argv[0]).absolute(), argv[1]
    lines, tags = [], set()
    try:
        for spec in argv[2:]:
            lang, _, kind = spec.partition(":")
            if kind not in ("", "cv", "mls"):
                raise ValueError(f"{spec}: the corpus after ':' must be cv or mls")
            kind, folder, ext = find(corpus, lang, kind or default)
            tag = f"{kind}_{lang}"
            if tag in tags:
                raise ValueError(f"{spec}: listed twice in --langs")
            tags.add(tag)
            lines.append(f"{tag} {kind} {lang} {ext} {folder}")
    except ValueError as err:
        print(f"run.sh: {err}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
