"""Labels beside a manifest (`X.ltr` letters / `X.wrd` words) and the vocabularies built from them: the one
reader used by fine-tuning, decoding (references) and scoring.

    >>> encode_labels("data/train.tsv", vocab, "ltr")      # [[4, 7, 9, 4], ...]: ids per manifest entry
    >>> reference_words("data/dev.tsv")                     # ["A MAN", ...] from dev.wrd (else dev.ltr), or None
    >>> vocab, source = build_vocab(["data/train.tsv"])     # dict.ltr.txt beside it, else counted letters

Label line i belongs to manifest entry i (file line i + 1, after the root line). A count mismatch is a
ManifestError naming the first unpaired line; a symbol outside the vocabulary is a DataError naming `FILE:LINE`.
A shard directory (w2v2cli/data/shards.py) stands for a manifest everywhere here: its labels are its members'
`KEY.ltr` / `KEY.wrd` (in index order), an error names the member, and its `dict.ltr.txt` lies inside it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from w2v2cli.data.manifest import labels_path, read_labels, read_manifest
from w2v2cli.data.shards import is_shard_dir, read_index, read_shard_labels
from w2v2cli.data.text import letter_counts, ltr_to_words, to_letters
from w2v2cli.errors import ConfigError, DataError, ManifestError
from w2v2cli.vocab import Vocabulary


def read_label_lines(manifest: str | os.PathLike, ext: str) -> list[str]:
    """Label lines of `manifest` (`X.ltr` / `X.wrd` beside `X.tsv`); a count mismatch names the unpaired line."""
    if is_shard_dir(manifest):
        return read_shard_labels(read_index(manifest), ext)
    try:
        return read_labels(manifest, ext)
    except ManifestError as err:
        lpath = labels_path(manifest, ext)
        if not lpath.is_file():
            raise
        try:
            n_labels = len(lpath.read_text(encoding="utf-8").splitlines())
        except (OSError, UnicodeDecodeError):
            raise err from None
        entries = read_manifest(manifest).entries
        if n_labels < len(entries):
            detail = (f"manifest entry {n_labels + 1} ({manifest} line {n_labels + 2}: {entries[n_labels].path}) "
                      f"has no label line {n_labels + 1} in {lpath}")
        elif n_labels > len(entries):
            detail = f"{lpath} line {len(entries) + 1} has no manifest entry"
        else:
            raise
        raise ManifestError(f"{err.message}: {detail}", hint=err.hint) from None


def find_labels(manifest: str | os.PathLike, ext: str) -> str:
    """`ext` when `X.ext` lies beside `X.tsv`, else the other of ltr/wrd when that one does (so a manifest with
    only `.wrd` transcripts works with the default `task.labels: ltr`); ManifestError naming both otherwise."""
    other = {"ltr": "wrd", "wrd": "ltr"}.get(ext)
    if is_shard_dir(manifest):
        have = read_index(manifest).labels
        return other if ext not in have and other in have else ext
    if labels_path(manifest, ext).is_file() or other is None or not labels_path(manifest, other).is_file():
        return ext
    return other


def _label_location(manifest: str | os.PathLike, ext: str):
    """`where(lineno)`: how an error names label line `lineno` (1-based): `FILE:LINE`, or a shard's member."""
    if is_shard_dir(manifest):
        index = read_index(manifest)

        def member(lineno: int) -> str:  # asked only for an error: no list of every member's name up front
            j = lineno - 1
            for k, shard in enumerate(index.shards):
                if j < len(shard.keys):
                    return index.member_name(k, j, ext)
                j -= len(shard.keys)
            raise IndexError(f"label line {lineno} is past the shards' members")

        return member
    lpath = labels_path(manifest, ext)
    return lambda lineno: f"{lpath}:{lineno}"


def labels_as(lines: Sequence[str], have: str, want: str) -> list[str]:
    """Converts label lines between `ltr` ('A | M A N |') and `wrd` ('A MAN') / plain text ('text')."""
    if want == "ltr":
        return list(lines) if have == "ltr" else [to_letters(line) for line in lines]
    return [ltr_to_words(line) for line in lines] if have == "ltr" else [" ".join(line.split()) for line in lines]


def encode_labels(manifest: str | os.PathLike, vocab: Vocabulary, ext: str) -> list[list[int]]:
    """Target ids per manifest entry; a symbol outside `vocab` is a DataError naming `FILE:LINE`."""
    ext = find_labels(manifest, ext)
    lines = read_label_lines(manifest, ext)
    where = _label_location(manifest, ext)
    texts = labels_as(lines, ext, "ltr" if vocab.kind == "letters" else "wrd")
    out = []
    for lineno, (raw, text) in enumerate(zip(lines, texts), 1):
        try:
            ids = vocab.encode(text)
        except ValueError as err:
            raise DataError(f"{where(lineno)}: {err} (label: {raw.strip()!r})",
                            hint="the label's characters must be in the vocabulary (dict.ltr.txt beside the "
                                 "training manifest, or the letters of the training labels); normalise the "
                                 "transcripts the same way for every split") from None
        if vocab.blank in ids:
            raise DataError(f"{where(lineno)}: the label contains the CTC blank symbol "
                            f"{vocab.blank_token!r}", hint="remove it from the transcript")
        out.append(ids)
    return out


def letter_dict_path(manifest: str | os.PathLike) -> Path:
    """Where the letters of `manifest` are listed: dict.ltr.txt beside a manifest, inside a shard directory."""
    manifest = Path(manifest)
    return (manifest if is_shard_dir(manifest) else manifest.parent) / "dict.ltr.txt"


def build_vocab(train_manifests: Sequence[str | os.PathLike], kind: str = "letters", labels: str = "ltr",
                vocab_size: int = 0, spm_type: str = "unigram",
                init_vocab: Vocabulary | None = None) -> tuple[Vocabulary, str]:
    """(vocabulary, where it came from) for fine-tuning on `train_manifests`; see the module docstring."""
    manifests = [Path(m) for m in train_manifests]
    if not manifests:
        raise DataError("no training manifest given")
    lines: list[str] = []
    for m in manifests:
        ext = find_labels(m, labels)
        lines += labels_as(read_label_lines(m, ext), ext, "ltr" if kind == "letters" else "wrd")
    if kind == "letters":
        dict_path = letter_dict_path(manifests[0])
        if dict_path.is_file():
            return Vocabulary.from_fairseq_dict(dict_path), str(dict_path)
        if init_vocab is not None and init_vocab.kind == "letters":
            return init_vocab, "the --init model's vocabulary"
        counts = letter_counts(lines)
        if not counts:
            raise DataError(f"the labels of {', '.join(map(str, manifests))} are empty: no letters to learn")
        tokens = ["<s>", "<pad>", "</s>", "<unk>"] + [sym for sym, _ in counts]
        return Vocabulary(tokens, blank=0, word_sep="|", unk="<unk>"), "the training labels"
    if kind == "spm":
        if vocab_size <= 0:
            raise ConfigError("--vocab spm needs a vocabulary size", hint="--vocab-size N (e.g. 64 for a few "
                                                                          "hours of English, 1000 for 100 h)")
        if spm_type not in ("unigram", "bpe"):
            raise ConfigError(f"SentencePiece model type must be unigram or bpe, got {spm_type!r}")
        text = [line for line in lines if line.strip()]
        if not text:
            raise DataError(f"the labels of {', '.join(map(str, manifests))} are empty: nothing to train "
                            "SentencePiece on")
        try:
            vocab = Vocabulary.train_spm(text, vocab_size=vocab_size - 1, model_type=spm_type)
        except ManifestError as err:
            chars = len({c for line in text for c in line if not c.isspace()})
            raise DataError(err.message, hint=f"--vocab-size must leave room for the blank, <unk> and the "
                                              f"{chars} characters of the transcripts (at least {chars + 2})"
                            ) from None
        return vocab, f"SentencePiece {spm_type} trained on {len(text)} training transcripts"
    raise ConfigError(f"task.vocab must be letters or spm, got {kind!r}")




def reference_words(manifest: str | os.PathLike) -> list[str] | None:
    """Word references of a manifest's entries: `X.wrd`, else `X.ltr` as words; None when it has neither."""
    for ext in ("wrd", "ltr"):
        if labels_path(manifest, ext).is_file():
            return labels_as(read_labels(manifest, ext), ext, "wrd")
    return None
