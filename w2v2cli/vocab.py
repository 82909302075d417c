"""Output vocabularies of CTC models: letters (fairseq `dict.ltr.txt` style) or SentencePiece pieces.

    >>> vocab = Vocabulary.from_fairseq_dict("data/dict.ltr.txt")   # <s> <pad> </s> <unk> | E T A ...
    >>> vocab.encode("A | M A N |")
    [7, 4, 17, 7, 9, 4]
    >>> vocab.decode([7, 4, 17, 7, 9, 4])
    'A MAN'
    >>> spm_vocab = Vocabulary.train_spm(lines, vocab_size=100)    # subword units, blank at index 0

Index `blank` (0) is the CTC blank. For fairseq letter dictionaries that is `<s>`, as fairseq's CTC criterion
uses `dictionary.bos()` as the blank; transformers calls the same output `<pad>`.
A vocabulary is stored inside a checkpoint's `config.yaml` via `to_dict()` / `from_dict()`.
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from w2v2cli.errors import CheckpointError, ManifestError

FAIRSEQ_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
SPM_BLANK = "<blank>"


def letters_from_words(text: str, word_sep: str = "|") -> str:
    """'A MAN' -> 'A | M A N |' (the `.ltr` form of a `.wrd` line)."""
    words = text.split()
    return " ".join(" ".join(list(word)) + f" {word_sep}" for word in words)


class Vocabulary:
    """An ordered list of output symbols with the CTC blank at index `blank`.

    kind "letters": `encode` takes a `.ltr` line (space-separated symbols, `word_sep` between words);
    kind "spm": `encode` takes plain text and splits it with the SentencePiece model in `spm_model`
    (serialized model bytes), whose piece i is our token i + 1 (index 0 is the blank).
    """

    def __init__(
        self,
        tokens: list[str],
        blank: int = 0,
        word_sep: str | None = "|",
        unk: str | None = "<unk>",
        kind: str = "letters",
        spm_model: bytes | None = None,
    ):
        if kind not in ("letters", "spm"):
            raise ValueError(f"vocabulary kind must be 'letters' or 'spm', got {kind!r}")
        if not tokens:
            raise ValueError("a vocabulary needs at least one token")
        if len(set(tokens)) != len(tokens):
            dupes = sorted({t for t in tokens if tokens.count(t) > 1})
            raise ValueError(f"duplicate tokens in vocabulary: {dupes}")
        if not 0 <= blank < len(tokens):
            raise ValueError(f"blank index {blank} is outside the vocabulary of {len(tokens)} tokens")
        if kind == "spm" and not spm_model:
            raise ValueError("an 'spm' vocabulary needs the SentencePiece model bytes (spm_model)")
        self.tokens = list(tokens)
        self.blank = blank
        self.word_sep = word_sep if (word_sep is None or word_sep in tokens) else None
        self.unk = unk if (unk is not None and unk in tokens) else None
        self.kind = kind
        self.spm_model = spm_model
        self.index = {tok: i for i, tok in enumerate(self.tokens)}
        self._sp = None
        if kind == "spm":
            self._sp = _load_spm(spm_model)
            if self._sp.get_piece_size() + 1 != len(tokens):
                raise ValueError(
                    f"SentencePiece model has {self._sp.get_piece_size()} pieces but the vocabulary has "
                    f"{len(tokens)} tokens (expected pieces + 1 for the blank)"
                )
        # symbols that never appear in decoded text: the blank and fairseq's other control symbols
        self._silent = {self.blank} | {self.index[t] for t in ("<s>", "<pad>", "</s>") if t in self.index}

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Vocabulary(kind={self.kind!r}, size={len(self)}, blank={self.tokens[self.blank]!r})"

    @property
    def blank_token(self) -> str:
        return self.tokens[self.blank]

    # ------------------------------------------------------------------ encode / decode
    def encode(self, text_line: str) -> list[int]:
        """Token ids of one label line. Letters: 'A | M A N |'; spm: plain text 'A MAN'.

        Raises ValueError naming the first symbol that is not in the vocabulary (letters only).
        """
        if self.kind == "spm":
            return [i + 1 for i in self._sp.encode(text_line.strip())]
        ids = []
        for symbol in text_line.split():
            idx = self.index.get(symbol)
            if idx is None:
                raise ValueError(f"symbol {symbol!r} is not in the vocabulary ({len(self)} tokens)")
            ids.append(idx)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Token ids (already CTC-collapsed) -> words separated by single spaces; blanks are dropped."""
        ids = [int(i) for i in ids]
        if self.kind == "spm":
            return self._sp.decode([i - 1 for i in ids if i not in self._silent and i > 0]).strip()
        pieces = []
        for i in ids:
            if i in self._silent:
                continue
            if not 0 <= i < len(self.tokens):
                raise ValueError(f"token id {i} is outside the vocabulary of {len(self)} tokens")
            tok = self.tokens[i]
            pieces.append(" " if tok == self.word_sep else tok)
        return " ".join("".join(pieces).split())

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_fairseq_dict(cls, path: str | os.PathLike) -> "Vocabulary":
        """Reads a fairseq `dict.ltr.txt` (`symbol count` per line): `<s> <pad> </s> <unk>` then its symbols."""
        path = Path(path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise ManifestError(f"cannot read dictionary {path}: {err}") from err
        tokens = list(FAIRSEQ_SPECIALS)
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            fields = line.rstrip().split(" ")
            overwrite = fields[-1] == "#fairseq:overwrite"
            if overwrite:
                fields = fields[:-1]
            if len(fields) < 2:
                raise ManifestError(f"{path}:{lineno}: expected 'SYMBOL COUNT', got {line!r}")
            symbol, count = " ".join(fields[:-1]), fields[-1]
            try:
                int(count)
            except ValueError:
                raise ManifestError(f"{path}:{lineno}: count {count!r} is not an integer") from None
            if symbol in tokens:
                if overwrite:
                    continue
                raise ManifestError(
                    f"{path}:{lineno}: duplicate symbol {symbol!r}",
                    hint="fairseq marks intended duplicates with '#fairseq:overwrite'",
                )
            tokens.append(symbol)
        if len(tokens) == len(FAIRSEQ_SPECIALS):
            raise ManifestError(f"{path}: dictionary has no symbols")
        return cls(tokens, blank=0, word_sep="|", unk="<unk>")

    def to_fairseq_dict(self) -> str:
        """The `dict.ltr.txt` text for this vocabulary (letters only; counts are not kept, so 1 each)."""
        if self.tokens[: len(FAIRSEQ_SPECIALS)] != FAIRSEQ_SPECIALS:
            raise ValueError("only vocabularies that start with fairseq's <s> <pad> </s> <unk> can be written as dict")
        return "".join(f"{tok} 1\n" for tok in self.tokens[len(FAIRSEQ_SPECIALS):])

    @classmethod
    def from_hf_vocab(
        cls, vocab_json: dict[str, int], pad_token: str = "<pad>", word_delimiter_token: str | None = "|",
        unk_token: str | None = "<unk>",
    ) -> "Vocabulary":
        """transformers' `vocab.json` ({token: id}); its `pad_token` is the CTC blank."""
        if not isinstance(vocab_json, dict) or not vocab_json:
            raise ValueError("vocab.json must be a non-empty mapping of token to id")
        if all(isinstance(v, dict) for v in vocab_json.values()):
            raise ValueError(
                f"vocab.json holds several vocabularies ({', '.join(list(vocab_json)[:5])}); "
                "multi-language tokenizers are not supported"
            )
        by_id: dict[int, str] = {}
        for tok, idx in vocab_json.items():
            if not isinstance(idx, int) or isinstance(idx, bool):
                raise ValueError(f"vocab.json: id of {tok!r} is not an integer: {idx!r}")
            if idx in by_id:
                raise ValueError(f"vocab.json: id {idx} is used by both {by_id[idx]!r} and {tok!r}")
            by_id[idx] = tok
        if sorted(by_id) != list(range(len(by_id))):
            missing = sorted(set(range(max(by_id) + 1)) - set(by_id))[:5]
            raise ValueError(f"vocab.json: ids are not contiguous from 0 (missing {missing})")
        tokens = [by_id[i] for i in range(len(by_id))]
        if pad_token not in vocab_json:
            raise ValueError(f"vocab.json has no pad token {pad_token!r} (the CTC blank)")
        return cls(tokens, blank=vocab_json[pad_token], word_sep=word_delimiter_token, unk=unk_token)

    def to_hf_vocab(self) -> tuple[dict[str, int], dict[str, str | None]]:
        """(vocab.json mapping, special tokens) for transformers' `Wav2Vec2CTCTokenizer`.

        transformers takes the blank from `pad_token`; a fairseq dictionary's blank `<s>` and `<pad>` trade
        names so that `<pad>` is index 0 (the same swap transformers' own fairseq conversion makes).
        """
        if self.kind != "letters":
            raise ValueError("only letter vocabularies can be written for Wav2Vec2CTCTokenizer")
        tokens = list(self.tokens)
        if tokens[self.blank] != "<pad>":
            if "<pad>" in tokens:
                j = tokens.index("<pad>")
                tokens[j] = tokens[self.blank]
            tokens[self.blank] = "<pad>"
        specials = {
            "pad_token": "<pad>",
            "unk_token": self.unk,
            "bos_token": "<s>" if "<s>" in tokens else None,
            "eos_token": "</s>" if "</s>" in tokens else None,
            "word_delimiter_token": self.word_sep,
        }
        return {tok: i for i, tok in enumerate(tokens)}, specials

    @classmethod
    def from_spm(cls, model: bytes | str | os.PathLike) -> "Vocabulary":
        """Wraps a SentencePiece model (bytes or a `.model` path): token 0 is the blank, then its pieces."""
        if not isinstance(model, bytes):
            try:
                model = Path(model).read_bytes()
            except OSError as err:
                raise ManifestError(f"cannot read SentencePiece model {model}: {err.strerror}") from err
        sp = _load_spm(model)
        tokens = [SPM_BLANK] + [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
        unk = sp.id_to_piece(sp.unk_id()) if sp.unk_id() >= 0 else None
        return cls(tokens, blank=0, word_sep=None, unk=unk, kind="spm", spm_model=model)

    @classmethod
    def train_spm(
        cls, lines: Iterable[str], vocab_size: int, model_type: str = "unigram", character_coverage: float = 1.0,
    ) -> "Vocabulary":
        """Trains a SentencePiece model on text lines (in memory) and wraps it; see `from_spm`."""
        import sentencepiece as spm

        out = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(list(lines)), model_writer=out, vocab_size=vocab_size,
                model_type=model_type, character_coverage=character_coverage,
                bos_id=-1, eos_id=-1, unk_id=0, hard_vocab_limit=False, minloglevel=2,
            )
        except RuntimeError as err:
            raise ManifestError(f"SentencePiece training failed: {err}") from err
        return cls.from_spm(out.getvalue())

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain data for config.yaml (the SentencePiece model is stored base64-encoded)."""
        return {
            "kind": self.kind,
            "tokens": list(self.tokens),
            "blank": self.blank,
            "word_sep": self.word_sep,
            "unk": self.unk,
            "spm_model": base64.b64encode(self.spm_model).decode("ascii") if self.spm_model else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "vocab") -> "Vocabulary":
        if not isinstance(data, dict) or "tokens" not in data:
            raise CheckpointError(f"{source}: vocabulary must be a mapping with 'tokens'")
        unknown = set(data) - {"kind", "tokens", "blank", "word_sep", "unk", "spm_model"}
        if unknown:
            raise CheckpointError(f"{source}: unknown vocabulary keys {sorted(unknown)}")
        spm_model = data.get("spm_model")
        try:
            return cls(
                [str(t) for t in data["tokens"]], blank=int(data.get("blank", 0)),
                word_sep=data.get("word_sep", "|"), unk=data.get("unk", "<unk>"),
                kind=data.get("kind", "letters"),
                spm_model=base64.b64decode(spm_model) if spm_model else None,
            )
        except (ValueError, TypeError) as err:
            raise CheckpointError(f"{source}: invalid vocabulary: {err}") from err


def _load_spm(model: bytes):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor()
    try:
        sp.LoadFromSerializedProto(model)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"not a SentencePiece model: {err}") from err
    return sp


def collapse_ctc(ids: Sequence[int], blank: int = 0) -> list[int]:
    """Greedy CTC collapse: merge repeats, then drop blanks ([0, 5, 5, 0, 5] -> [5, 5])."""
    out, prev = [], None
    for i in ids:
        i = int(i)
        if i != prev and i != blank:
            out.append(i)
        prev = i
    return out


def check_vocab_size(vocab: "Vocabulary | None", vocab_size: int, where: str, error: type = CheckpointError) -> None:
    """The one rule tying a CTC model to its vocabulary: `vocab_size` outputs, one per token (blank included)."""
    if vocab is not None and len(vocab) != vocab_size:
        raise error(f"{where}: vocabulary has {len(vocab)} tokens but the model has {vocab_size} outputs")
