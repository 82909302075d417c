"""KenLM n-gram language models and letter lexicons for CTC beam search.

    >>> lm = build_lm("data/lm_corpus.txt", "exp/lm", order=4)
    >>> lm.binary, lm.lexicon            # exp/lm/lm.bin, exp/lm/lexicon.txt
    >>> # w2v2 decode CKPT test.tsv --decoder beam --lexicon exp/lm/lexicon.txt --lm exp/lm/lm.bin

The corpus is plain text, one sentence per line, words separated by spaces, in the same case as the
acoustic model's letters (LibriSpeech: upper case). KenLM's `lmplz` estimates a modified Kneser-Ney model
(ARPA) and `build_binary` turns it into KenLM's binary format; both are found on PATH, in `$W2V2_KENLM_BIN`
or in `tools/kenlm/bin` (`bash tools/install_kenlm.sh` builds them). The lexicon is what torchaudio's
`ctc_decoder` reads for a letter vocabulary: one line per word, the word then its letters and the
word-separator token, `HELLO<TAB>H E L L O |`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from w2v2cli.config import save_yaml
from w2v2cli.errors import DataError, ToolMissingError
from w2v2cli.textio import atomic_write_text, read_utf8_lines

REPO_ROOT = Path(__file__).resolve().parents[1]
KENLM_HINT = "run 'bash tools/install_kenlm.sh' (builds lmplz and build_binary into tools/kenlm/bin)"
KENLM_SPECIALS = {"<s>", "</s>", "<unk>"}


def find_kenlm_tool(name: str) -> Path:
    """Path of a KenLM program (`lmplz`, `build_binary`). `$W2V2_KENLM_BIN`, when set, is the only place
    looked at; otherwise PATH, then the repository's tools/kenlm/bin."""
    env = os.environ.get("W2V2_KENLM_BIN")
    if env:
        candidates = [Path(env) / name]
        where = f"$W2V2_KENLM_BIN ({env})"
    else:
        on_path = shutil.which(name)
        candidates = ([Path(on_path)] if on_path else []) + [REPO_ROOT / "tools" / "kenlm" / "bin" / name]
        where = f"PATH and {REPO_ROOT / 'tools' / 'kenlm' / 'bin'}"
    for cand in candidates:
        if cand.is_file() and os.access(cand, os.X_OK):
            return cand
    raise ToolMissingError(f"KenLM's '{name}' was not found (looked in {where})", hint=KENLM_HINT)


def spell(word: str, word_sep: str | None = "|") -> list[str]:
    """Letters of a word followed by the word separator: `HELLO` -> `['H', 'E', 'L', 'L', 'O', '|']`."""
    return list(word) + ([word_sep] if word_sep else [])


def lexicon_lines(words: Iterable[str], word_sep: str | None = "|") -> list[str]:
    """Lexicon lines `WORD<TAB>W O R D |`, one per distinct word, sorted."""
    return [f"{w}\t{' '.join(spell(w, word_sep))}" for w in sorted(set(words))]


def write_lexicon(words: Iterable[str], path: str | Path, word_sep: str | None = "|") -> Path:
    """Writes a lexicon for torchaudio's `ctc_decoder` atomically; returns its path."""
    path = Path(path)
    atomic_write_text(path, "\n".join(lexicon_lines(words, word_sep)) + "\n")
    return path


@dataclass
class LMConfig:
    """Options of `w2v2 lm build`."""

    order: int = 4  # n-gram order
    memory: str = "20%"  # lmplz sorting memory (-S), GNU sort syntax
    prune: list[int] = field(default_factory=list)  # lmplz --prune thresholds per order (empty: none)
    binary_type: str = "trie"  # build_binary data structure: trie (small) or probing (fast)
    letters: list[str] | None = None  # the acoustic model's letters: words with others stay out of the lexicon
    word_sep: str = "|"  # the word-separator token ending each lexicon spelling


@dataclass
class LMArtifacts:
    """What `build_lm` wrote."""

    out_dir: Path
    arpa: Path
    binary: Path
    lexicon: Path
    sentences: int
    tokens: int
    words: int  # distinct words in the lexicon
    skipped_words: list[str]  # distinct words left out of the lexicon (letters outside the vocabulary)
    ngrams: dict[int, int]  # order -> number of n-grams in the ARPA file


def read_corpus(path: str | Path) -> list[str]:
    """Sentences of a text corpus, whitespace-normalised; blank lines dropped. DataError when unusable."""
    path = Path(path)
    lines = read_utf8_lines(path, DataError, "text corpus")
    sentences = [" ".join(line.split()) for line in lines]
    sentences = [s for s in sentences if s]
    if not sentences:
        raise DataError(f"{path}: the text corpus has no words")
    return sentences


def arpa_ngram_counts(arpa: str | Path) -> dict[int, int]:
    """The `ngram N=count` lines of an ARPA header."""
    counts: dict[int, int] = {}
    with open(arpa, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"ngram (\d+)=(\d+)", line.strip())
            if m:
                counts[int(m.group(1))] = int(m.group(2))
            elif line.startswith("\\1-grams:"):
                break
    return counts


def _run(cmd: Sequence[str], what: str) -> None:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise DataError(f"{what} failed (exit {proc.returncode}): {tail}")


def build_lm(text: str | Path, out_dir: str | Path, config: LMConfig | None = None) -> LMArtifacts:
    """Builds `lm.arpa`, `lm.bin` and `lexicon.txt` in `out_dir` from a text corpus.

    Everything is built in a temporary directory beside `out_dir` and each file is then renamed into
    place, so an interrupted build never leaves a half-written model.
    """
    cfg = config or LMConfig()
    if cfg.order < 1:
        raise DataError(f"n-gram order must be at least 1, got {cfg.order}")
    if cfg.binary_type not in ("trie", "probing"):
        raise DataError(f"binary type must be 'trie' or 'probing', got {cfg.binary_type!r}")
    lmplz, build_binary = find_kenlm_tool("lmplz"), find_kenlm_tool("build_binary")
    sentences = read_corpus(text)
    tokens = [w for s in sentences for w in s.split()]
    words = sorted(set(tokens) - KENLM_SPECIALS)
    if cfg.letters is not None:
        allowed = set(cfg.letters)
        skipped = [w for w in words if not set(w) <= allowed]
        words = [w for w in words if set(w) <= allowed]
        if not words:
            raise DataError(f"{text}: no word of the corpus is spelled with the vocabulary's letters "
                            f"(first word: {skipped[0]!r})", hint="check the corpus' case against the vocabulary")
    else:
        skipped = []

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".lm-build-", dir=out) as tmp:
        tmp = Path(tmp)
        corpus = tmp / "corpus.txt"
        corpus.write_text("\n".join(sentences) + "\n", encoding="utf-8")
        arpa, binary, lexicon = tmp / "lm.arpa", tmp / "lm.bin", tmp / "lexicon.txt"
        cmd = [lmplz, "-o", str(cfg.order), "--text", corpus, "--arpa", arpa, "-S", cfg.memory,
               "-T", tmp / "sort", "--discount_fallback", "--skip_symbols"]
        if cfg.prune:
            cmd += ["--prune", *[str(p) for p in cfg.prune]]
        _run(cmd, "lmplz")
        _run([build_binary, cfg.binary_type, arpa, binary], "build_binary")
        write_lexicon(words, lexicon, cfg.word_sep)
        ngrams = arpa_ngram_counts(arpa)
        info = {"order": cfg.order, "sentences": len(sentences), "tokens": len(tokens), "words": len(words),
                "skipped_words": len(skipped), "ngrams": ngrams, "binary_type": cfg.binary_type,
                "source": str(Path(text).resolve())}
        save_yaml(info, tmp / "lm.yaml")
        for name in ("lm.arpa", "lm.bin", "lexicon.txt", "lm.yaml"):
            os.replace(tmp / name, out / name)
    return LMArtifacts(out, out / "lm.arpa", out / "lm.bin", out / "lexicon.txt", len(sentences), len(tokens),
                       len(words), skipped, ngrams)
