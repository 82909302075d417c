"""Scoring that agrees with NIST sclite: WER, CER, sentence errors, alignments, speakers, confusions.

    >>> report = score_files("exp/decode/ref.trn", "exp/decode/hyp.trn")
    >>> report.word.wer, report.char.wer, report.word.total.sentence_errors    # 0.0712, 0.0345, 41
    >>> write_report(report, "exp/decode/score")          # pralign.txt, speakers.tsv, confusions.tsv, summary.json

How the numbers are made, and why they equal `sclite -s` (word) and `sclite -s -c -e utf-8` (characters):

* Alignment. sclite does not use unit edit costs: a substitution costs 4, an insertion or a deletion 3,
  a match 0 (`wwd_WORD` in sctk's word.c). With those weights an alignment can have *more* errors than the
  unit-cost (Levenshtein) one that jiwer computes: ref `a b`, hyp `b c` is 1 deletion + 1 insertion for
  sclite but 2 substitutions for jiwer, and ref `a b c`, hyp `c x y` is 3 substitutions for sclite although
  a 4-error path with one match costs the same. sclite breaks ties per cell in the order substitution/match,
  then deletion, then insertion, and traces back from the last cell. `align()` does exactly this, so counts
  of S, D and I (not only their sum) match sclite's. jiwer supplies the text normalisation transforms.
* An empty reference is a sentence with 0 reference words; every hypothesis word in it is an insertion and
  the sentence is a sentence error. Word error rate is (S + D + I) / (reference words) summed over all
  utterances, so such insertions raise the corpus WER. When the whole set has no reference words the rate is
  undefined (`None`; sclite prints `UNDEF`). An empty reference with an empty hypothesis is a correct sentence.
* A sentence error is an utterance with at least one substitution, deletion or insertion.
* Characters (`unit="char"`) are the characters of the words, word boundaries dropped: sclite's `-c` splits
  each word into characters and ignores spaces, so "ab cd" vs "abcd" has no error. Unicode code points
  (sclite needs `-e utf-8` for this).
* Comparison is exact (case-sensitive, like `sclite -s`); `lowercase` and `remove_punctuation` are explicit
  options applied to both sides before scoring. sclite's trn markup (`(optional)` words, `@`, `{ a / b }`
  alternations) is not interpreted: every whitespace-separated token is a word.
* Rates are fractions (0.25 = 25 %) everywhere in the library. Only what is printed or written as a report
  is in percent, computed from the counts (`percent(errors, ref_tokens)` = 100 * errors / ref_tokens), so the
  digits equal sclite's even at rounding ties, where 100 * (errors / ref_tokens) can be one unit off.
* Speakers follow sclite's `-i rm` rule: the part of the utterance id before the first `-`
  (LibriSpeech `1089-134686-0000` -> `1089`). Ids without `-` have no speaker breakdown.

File formats (by extension): `.trn` lines are `words (utt-id)` and are paired by id; `.ltr` lines are letters
with `|` between words; `.wrd`, `.txt` and anything else is one transcript per line, paired by line number.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from w2v2cli.data.text import ltr_to_words
from w2v2cli.errors import ManifestError
from w2v2cli.textio import atomic_write_text, read_utf8_lines

# sclite's word-to-word distances (sctk word.c, wwd_WORD).
COST_SUB = 4
COST_INS = 3
COST_DEL = 3

CORRECT, SUB, DEL, INS = "C", "S", "D", "I"

# --------------------------------------------------------------------------------------------------
# alignment


def align(ref: Sequence[str], hyp: Sequence[str]) -> list[tuple[str, str | None, str | None]]:
    """Aligns two token sequences the way sclite does; returns `[(op, ref_token, hyp_token), ...]`.

        >>> align(["a", "b"], ["b", "c"])
        [('D', 'a', None), ('C', 'b', 'b'), ('I', None, 'c')]

    `op` is one of "C", "S", "D", "I"; the missing side of a deletion/insertion is None. Costs are 4 for a
    substitution and 3 for an insertion or deletion; ties go to substitution/match, then deletion, then
    insertion (see the module docstring).
    """
    n, m = len(ref), len(hyp)
    if n == 0:
        return [(INS, None, h) for h in hyp]
    if m == 0:
        return [(DEL, r, None) for r in ref]
    # Integer token ids so each row is a vector comparison.
    index: dict[str, int] = {}
    ref_ids = np.array([index.setdefault(t, len(index)) for t in ref], dtype=np.int64)
    hyp_ids = np.array([index.setdefault(t, len(index)) for t in hyp], dtype=np.int64)

    cols = np.arange(m + 1, dtype=np.int64)
    prev = cols * COST_INS  # row 0: insertions only
    # back pointers: 0 = diagonal (match or substitution), 1 = deletion (up), 2 = insertion (left)
    back = np.empty((n + 1, m + 1), dtype=np.uint8)
    back[0, :] = 2
    back[:, 0] = 1
    for i in range(1, n + 1):
        diag = prev[:-1] + np.where(hyp_ids == ref_ids[i - 1], 0, COST_SUB)
        up = prev[1:] + COST_DEL
        base = np.empty(m + 1, dtype=np.int64)
        base[0] = prev[0] + COST_DEL
        base[1:] = np.minimum(diag, up)
        # cost[j] = min(base[j], cost[j-1] + INS): a running minimum of base[k] + INS * (j - k).
        cur = np.minimum.accumulate(base - cols * COST_INS) + cols * COST_INS
        left = cur[:-1] + COST_INS
        # sclite's rule per cell: diagonal if <= both, else deletion if < insertion, else insertion.
        take_diag = (diag <= up) & (diag <= left)
        take_del = ~take_diag & (up < left)
        row = np.full(m, 2, dtype=np.uint8)
        row[take_del] = 1
        row[take_diag] = 0
        back[i, 1:] = row
        prev = cur

    ops: list[tuple[str, str | None, str | None]] = []
    i, j = n, m
    while i > 0 or j > 0:
        move = back[i, j]
        if move == 0:
            r, h = ref[i - 1], hyp[j - 1]
            ops.append((CORRECT if r == h else SUB, r, h))
            i, j = i - 1, j - 1
        elif move == 1:
            ops.append((DEL, ref[i - 1], None))
            i -= 1
        else:
            ops.append((INS, None, hyp[j - 1]))
            j -= 1
    ops.reverse()
    return ops


# --------------------------------------------------------------------------------------------------
# counts and results


@dataclass
class Counts:
    """Error counts over one or more utterances (sclite's `# Snt # Wrd Corr Sub Del Ins Err S.Err`)."""

    sentences: int = 0
    ref_tokens: int = 0
    hyp_tokens: int = 0
    correct: int = 0
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    sentence_errors: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def error_rate(self) -> float | None:
        """(S + D + I) / reference tokens as a fraction (0.25 = 25 %); None when there are no reference tokens."""
        return self.errors / self.ref_tokens if self.ref_tokens else None

    @property
    def sentence_error_rate(self) -> float | None:
        """Sentence errors / sentences as a fraction; None when there are no sentences."""
        return self.sentence_errors / self.sentences if self.sentences else None

    def add(self, other: "Counts") -> None:
        for name in ("sentences", "ref_tokens", "hyp_tokens", "correct", "substitutions", "deletions",
                     "insertions", "sentence_errors"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_dict(self) -> dict:
        """The counts and, as `summary.json` reports them, the rates in percent."""
        return {
            "sentences": self.sentences, "ref_tokens": self.ref_tokens, "hyp_tokens": self.hyp_tokens,
            "correct": self.correct, "substitutions": self.substitutions, "deletions": self.deletions,
            "insertions": self.insertions, "errors": self.errors, "sentence_errors": self.sentence_errors,
            "error_rate": percent(self.errors, self.ref_tokens),
            "sentence_error_rate": percent(self.sentence_errors, self.sentences),
        }


@dataclass
class UtteranceScore:
    """One aligned utterance: its id, speaker (or None), tokens, alignment and counts."""

    id: str
    speaker: str | None
    ref: list[str]
    hyp: list[str]
    ops: list[tuple[str, str | None, str | None]]
    counts: Counts


@dataclass
class ScoreResult:
    """Scores of a set of utterances at one unit ("word" or "char")."""

    unit: str
    utterances: list[UtteranceScore]
    total: Counts
    speakers: dict[str, Counts]
    confusions: Counter  # (ref, hyp) -> count
    insertions: Counter  # hyp token -> count
    deletions: Counter  # ref token -> count
    ci95: tuple[float, float] | None  # bootstrap 95% interval of the error rate, fractions
    bootstrap_samples: int = 0
    seed: int = 0

    @property
    def wer(self) -> float | None:
        """The error rate as a fraction (WER for words, CER for characters)."""
        return self.total.error_rate

    def ci95_percent(self) -> tuple[float, float] | None:
        """The bootstrap interval in percent, for printing: the same resamples as `ci95`, each rate taken as
        100 * errors / ref_tokens (see `percent`)."""
        if self.ci95 is None:
            return None
        errors = np.array([u.counts.errors for u in self.utterances], dtype=np.int64)
        refs = np.array([u.counts.ref_tokens for u in self.utterances], dtype=np.int64)
        return bootstrap_ci(errors, refs, self.bootstrap_samples, self.seed, scale=100.0)

    def to_dict(self, top: int = 20) -> dict:
        """The `summary.json` layout of this unit; rates in percent."""
        ci = self.ci95_percent()
        return {
            "unit": self.unit,
            "total": self.total.to_dict(),
            "ci95": list(ci) if ci else None,
            "bootstrap_samples": self.bootstrap_samples,
            "seed": self.seed,
            "speakers": {spk: c.to_dict() for spk, c in self.speakers.items()},
            "confusions": [[r, h, n] for (r, h), n in most_common(self.confusions, top)],
            "insertions": [[t, n] for t, n in most_common(self.insertions, top)],
            "deletions": [[t, n] for t, n in most_common(self.deletions, top)],
        }


def percent(count: int, total: int) -> float | None:
    """100 * count / total, the percent that reports print; None when `total` is 0. Computed from the counts,
    not as 100 * rate, so the printed digits equal sclite's at rounding ties (1 error in 800 words: 0.125)."""
    return 100.0 * count / total if total else None


def most_common(counter: Counter, top: int | None = None) -> list:
    """Counter items by count (descending), then by key, so reports are deterministic."""
    items = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
    return items if top is None else items[:top]


def speaker_of(utt_id: str) -> str | None:
    """sclite's `-i rm` speaker: the id up to its first '-' (`1089-134686-0000` -> `1089`); None without '-'."""
    head, sep, _ = utt_id.partition("-")
    return head if sep and head else None


def tokenize(text: str, unit: str) -> list[str]:
    """Words (split on whitespace) or characters of the words (whitespace dropped, like `sclite -c`)."""
    words = text.split()
    if unit == "word":
        return words
    if unit == "char":
        return [ch for word in words for ch in word]
    raise ValueError(f"unit must be 'word' or 'char', got {unit!r}")


def score_utterance(utt_id: str, ref: str, hyp: str, unit: str = "word") -> UtteranceScore:
    """Aligns and counts one utterance."""
    r, h = tokenize(ref, unit), tokenize(hyp, unit)
    ops = align(r, h)
    tally = Counter(op for op, _, _ in ops)
    c = Counts(sentences=1, ref_tokens=len(r), hyp_tokens=len(h), correct=tally[CORRECT],
               substitutions=tally[SUB], deletions=tally[DEL], insertions=tally[INS])
    c.sentence_errors = int(c.errors > 0)
    return UtteranceScore(utt_id, speaker_of(utt_id), r, h, ops, c)


def bootstrap_ci(errors: np.ndarray, ref_tokens: np.ndarray, samples: int = 1000, seed: int = 0,
                 level: float = 0.95, scale: float = 1.0) -> tuple[float, float] | None:
    """Percentile bootstrap interval of sum(errors) / sum(ref_tokens) as fractions, resampling utterances;
    `scale=100.0` gives the same interval in percent, each rate computed as 100 * errors / ref_tokens.

    Resamples whose reference is empty are dropped; None when no resample has reference tokens.
    """
    n = len(errors)
    if n == 0 or samples <= 0:
        return None
    rng = np.random.default_rng(seed)
    rates = []
    chunk = max(1, min(samples, 2_000_000 // max(n, 1)))  # bound memory of the index matrix
    done = 0
    while done < samples:
        k = min(chunk, samples - done)
        idx = rng.integers(0, n, size=(k, n))
        e = errors[idx].sum(axis=1)
        r = ref_tokens[idx].sum(axis=1)
        ok = r > 0
        rates.append(scale * e[ok] / r[ok])
        done += k
    all_rates = np.concatenate(rates)
    if all_rates.size == 0:
        return None
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(all_rates, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def score_pairs(pairs: Iterable[tuple[str, str, str]], unit: str = "word", bootstrap: int = 1000,
                seed: int = 0) -> ScoreResult:
    """Scores `(utt_id, ref_text, hyp_text)` triples at `unit` ("word" or "char")."""
    utts = [score_utterance(i, r, h, unit) for i, r, h in pairs]
    total = Counts()
    speakers: dict[str, Counts] = {}
    confusions: Counter = Counter()
    insertions: Counter = Counter()
    deletions: Counter = Counter()
    for u in utts:
        total.add(u.counts)
        if u.speaker is not None:
            speakers.setdefault(u.speaker, Counts()).add(u.counts)
        for op, r, h in u.ops:
            if op == SUB:
                confusions[(r, h)] += 1
            elif op == INS:
                insertions[h] += 1
            elif op == DEL:
                deletions[r] += 1
    # A speaker table only makes sense when every id names a speaker.
    if any(u.speaker is None for u in utts):
        speakers = {}
    speakers = dict(sorted(speakers.items()))
    errors = np.array([u.counts.errors for u in utts], dtype=np.int64)
    refs = np.array([u.counts.ref_tokens for u in utts], dtype=np.int64)
    ci = bootstrap_ci(errors, refs, bootstrap, seed)
    return ScoreResult(unit, utts, total, speakers, confusions, insertions, deletions, ci, bootstrap, seed)


# --------------------------------------------------------------------------------------------------
# files

_TRN_LINE = re.compile(r"^(?P<text>.*?)\s*\((?P<id>[^()\s]+)\)\s*$")


@dataclass
class Transcripts:
    """Lines of one transcript file: texts, and ids when the format carries them (trn)."""

    path: Path
    texts: list[str]
    ids: list[str] | None
    lines: list[int] = field(default_factory=list)  # 1-based line number of each entry


def _read_lines(path: Path) -> list[str]:
    return read_utf8_lines(path, ManifestError, "transcript file")


def read_transcripts(path: str | Path, fmt: str | None = None) -> Transcripts:
    """Reads a transcript file; `fmt` is "trn", "ltr" or "txt" (default: from the extension).

    trn: every non-blank line must end with `(utt-id)`, ids unique; blank lines are skipped (as sclite does).
    ltr / wrd / txt: one transcript per line; an empty line is an empty transcript.
    """
    path = Path(path)
    fmt = fmt or {".trn": "trn", ".ltr": "ltr"}.get(path.suffix.lower(), "txt")
    lines = _read_lines(path)
    texts: list[str] = []
    numbers: list[int] = []
    if fmt == "trn":
        ids: list[str] = []
        seen: dict[str, int] = {}
        for no, line in enumerate(lines, 1):
            if not line.strip():
                continue
            m = _TRN_LINE.match(line)
            if m is None:
                raise ManifestError(f"{path}:{no}: a trn line must end with '(utterance-id)': {line.strip()[:80]!r}")
            utt = m.group("id")
            if utt in seen:
                raise ManifestError(f"{path}:{no}: utterance id '{utt}' already used on line {seen[utt]}")
            seen[utt] = no
            ids.append(utt)
            texts.append(" ".join(m.group("text").split()))
            numbers.append(no)
        return Transcripts(path, texts, ids, numbers)
    if fmt not in ("ltr", "txt", "wrd"):
        raise ValueError(f"unknown transcript format {fmt!r}")
    for no, line in enumerate(lines, 1):
        texts.append(ltr_to_words(line) if fmt == "ltr" else " ".join(line.split()))
        numbers.append(no)
    return Transcripts(path, texts, None, numbers)


def pair_transcripts(ref: Transcripts, hyp: Transcripts) -> list[tuple[str, str, str]]:
    """`(id, ref, hyp)` in the reference's order. Two trn files pair by id (the id sets must be equal);
    otherwise by line, the counts must be equal, and ids come from whichever file has them (else the
    line number)."""
    if ref.ids is not None and hyp.ids is not None:
        hyp_by_id = dict(zip(hyp.ids, hyp.texts))
        missing = [i for i in ref.ids if i not in hyp_by_id]
        ref_set = set(ref.ids)
        extra = [i for i in hyp.ids if i not in ref_set]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"{len(missing)} id(s) of {ref.path} missing from {hyp.path} (first: {missing[0]})")
            if extra:
                parts.append(f"{len(extra)} id(s) of {hyp.path} not in {ref.path} (first: {extra[0]})")
            raise ManifestError("utterance ids differ: " + "; ".join(parts),
                                hint="score a hypothesis against the reference of the same test set")
        return [(i, t, hyp_by_id[i]) for i, t in zip(ref.ids, ref.texts)]
    if len(ref.texts) != len(hyp.texts):
        raise ManifestError(
            f"line counts differ: {ref.path} has {len(ref.texts)} transcript(s), {hyp.path} has {len(hyp.texts)}",
            hint="reference and hypothesis must list the same utterances in the same order")
    ids = ref.ids or hyp.ids or [f"{n:06d}" for n in range(1, len(ref.texts) + 1)]
    return list(zip(ids, ref.texts, hyp.texts))


# --------------------------------------------------------------------------------------------------
# the one entry point


@dataclass
class ScoreConfig:
    """Options of `w2v2 score`; normalisation is off by default so numbers equal sclite's."""

    lowercase: bool = False
    remove_punctuation: bool = False
    bootstrap: int = 1000  # bootstrap resamples for the 95% interval (0: none)
    seed: int = 0
    ref_format: str | None = None  # trn | ltr | txt; None: by extension
    hyp_format: str | None = None


@dataclass
class ScoreReport:
    """Word and character scores of one REF/HYP pair of files."""

    ref_path: Path
    hyp_path: Path
    config: ScoreConfig
    word: ScoreResult
    char: ScoreResult

    def to_dict(self) -> dict:
        """The `summary.json` layout; rates in percent."""
        words, chars = self.word.total, self.char.total
        return {
            "ref": str(self.ref_path), "hyp": str(self.hyp_path),
            "normalisation": {"lowercase": self.config.lowercase,
                              "remove_punctuation": self.config.remove_punctuation},
            "wer": percent(words.errors, words.ref_tokens), "cer": percent(chars.errors, chars.ref_tokens),
            "sentence_error_rate": percent(words.sentence_errors, words.sentences),
            "word": self.word.to_dict(), "char": self.char.to_dict(),
        }


def normalizer(lowercase: bool = False, remove_punctuation: bool = False):
    """A text -> text function built from jiwer's transforms (identity when both are off)."""
    import jiwer

    steps = []
    if lowercase:
        steps.append(jiwer.ToLowerCase())
    if remove_punctuation:
        steps.append(jiwer.RemovePunctuation())
    if not steps:
        return lambda text: text
    steps += [jiwer.RemoveMultipleSpaces(), jiwer.Strip()]
    chain = jiwer.Compose(steps)
    return lambda text: chain(text)


def score_texts(pairs: Sequence[tuple[str, str, str]], config: ScoreConfig | None = None,
                ref_path: str | Path = "<ref>", hyp_path: str | Path = "<hyp>") -> ScoreReport:
    """Scores `(utt_id, ref_text, hyp_text)` triples at word and character level."""
    config = config or ScoreConfig()
    norm = normalizer(config.lowercase, config.remove_punctuation)
    pairs = [(i, norm(r), norm(h)) for i, r, h in pairs]
    word = score_pairs(pairs, "word", config.bootstrap, config.seed)
    char = score_pairs(pairs, "char", config.bootstrap, config.seed)
    return ScoreReport(Path(ref_path), Path(hyp_path), config, word, char)


def score_files(ref: str | Path, hyp: str | Path, config: ScoreConfig | None = None) -> ScoreReport:
    """Reads REF and HYP (trn / ltr / wrd / plain text), pairs them, and scores words and characters."""
    config = config or ScoreConfig()
    r = read_transcripts(ref, config.ref_format)
    h = read_transcripts(hyp, config.hyp_format)
    return score_texts(pair_transcripts(r, h), config, r.path, h.path)


def corpus_counts(refs: Sequence[str], hyps: Sequence[str]) -> tuple[Counts, Counts]:
    """Corpus word and character counts of parallel lists of texts (no bootstrap, no normalisation)."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    pairs = [(f"{n:06d}", r, h) for n, (r, h) in enumerate(zip(refs, hyps), 1)]
    return score_pairs(pairs, "word", 0).total, score_pairs(pairs, "char", 0).total


def wer_cer(refs: Sequence[str], hyps: Sequence[str]) -> tuple[float | None, float | None]:
    """Corpus WER and CER as fractions (0.25 = 25 %) of parallel lists of texts."""
    words, chars = corpus_counts(refs, hyps)
    return words.error_rate, chars.error_rate


# --------------------------------------------------------------------------------------------------
# reports


def format_pralign(result: ScoreResult) -> str:
    """Per-utterance alignments in the layout of sclite's `-o pralign` (columns padded, `*` for a gap,
    errors upper-cased only by sclite; we keep tokens as they are)."""
    out = [f"unit: {result.unit}", ""]
    for u in result.utterances:
        c = u.counts
        out.append(f"id: ({u.id})")
        out.append(f"Scores: (#C #S #D #I) {c.correct} {c.substitutions} {c.deletions} {c.insertions}")
        refs, hyps, evals = [], [], []
        for op, r, h in u.ops:
            rr, hh = r if r is not None else "*" * max(1, len(h or "")), h if h is not None else "*" * max(1, len(r or ""))
            width = max(len(rr), len(hh), 1)
            refs.append(rr.ljust(width))
            hyps.append(hh.ljust(width))
            evals.append(("" if op == CORRECT else op).ljust(width))
        out.append("REF:  " + " ".join(refs))
        out.append("HYP:  " + " ".join(hyps))
        out.append("Eval: " + " ".join(evals))
        out.append("")
    return "\n".join(out)


def format_percent(count: int, total: int, undefined: str = "UNDEF") -> str:
    """`percent(count, total)` with two decimals, as sclite prints it; `undefined` when `total` is 0."""
    value = percent(count, total)
    return undefined if value is None else f"{value:.2f}"


def format_speakers(result: ScoreResult) -> str:
    header = "speaker\tsentences\tref_tokens\tcorrect\tsub\tdel\tins\terrors\tsentence_errors\terror_rate\n"
    rows = [header]
    for spk, c in list(result.speakers.items()) + [("SUM", result.total)]:
        rows.append(f"{spk}\t{c.sentences}\t{c.ref_tokens}\t{c.correct}\t{c.substitutions}\t{c.deletions}\t"
                    f"{c.insertions}\t{c.errors}\t{c.sentence_errors}\t{format_percent(c.errors, c.ref_tokens)}\n")
    return "".join(rows)


def format_confusions(result: ScoreResult) -> str:
    rows = ["kind\tref\thyp\tcount\n"]
    rows += [f"sub\t{r}\t{h}\t{n}\n" for (r, h), n in most_common(result.confusions)]
    rows += [f"del\t{t}\t\t{n}\n" for t, n in most_common(result.deletions)]
    rows += [f"ins\t\t{t}\t{n}\n" for t, n in most_common(result.insertions)]
    return "".join(rows)


def write_report(report: ScoreReport, out_dir: str | Path) -> list[Path]:
    """Writes `summary.json`, and per unit (`word`, `char`): `pralign.<unit>.txt`, `speakers.<unit>.tsv`,
    `confusions.<unit>.tsv`. Each file is written atomically. Returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for result in (report.word, report.char):
        for name, text in ((f"pralign.{result.unit}.txt", format_pralign(result)),
                           (f"speakers.{result.unit}.tsv", format_speakers(result)),
                           (f"confusions.{result.unit}.tsv", format_confusions(result))):
            atomic_write_text(out / name, text)
            written.append(out / name)
    atomic_write_text(out / "summary.json", json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")
    written.append(out / "summary.json")
    return written
