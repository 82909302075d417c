"""`w2v2 score` against the real NIST sclite (Debian `sctk`), plus file handling and CLI errors.

Every comparison writes the same trn files, runs `sclite -s` (`-c -e utf-8` for characters), parses its
per-utterance `pralign` scores, its speaker summary (`rsum`) and its confusion lists (`dtl`), and requires
our numbers to be identical.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from w2v2cli.cli.app import app
from w2v2cli.errors import ManifestError
from w2v2cli.score import (
    ScoreConfig,
    align,
    format_percent,
    format_speakers,
    ltr_to_words,
    pair_transcripts,
    percent,
    read_transcripts,
    score_files,
    score_pairs,
    speaker_of,
    wer_cer,
    write_report,
)


def _sclite_cmd() -> list[str]:
    for cand in ("/usr/lib/sctk/bin/sclite", shutil.which("sclite")):
        if cand and Path(cand).exists():
            return [cand]
    if shutil.which("sctk"):
        return ["sctk", "sclite"]
    raise AssertionError("NIST sclite not found: run 'bash tools/install_system_deps.sh' (Debian package sctk)")


def write_trn(path: Path, pairs, side: int) -> Path:
    path.write_text("".join(f"{p[side]} ({p[0]})\n" for p in pairs), encoding="utf-8")
    return path


def run_sclite(tmp: Path, pairs, char: bool = False) -> dict:
    """Runs sclite on `(id, ref, hyp)` triples; returns per-utterance (C, S, D, I), the Sum row,
    speaker rows and the confusion / insertion / deletion counters."""
    ref = write_trn(tmp / "ref.trn", pairs, 1)
    hyp = write_trn(tmp / "hyp.trn", pairs, 2)
    cmd = _sclite_cmd() + ["-r", str(ref), "trn", "-h", str(hyp), "trn", "-i", "rm", "-s", "-e", "utf-8"]
    if char:
        cmd.append("-c")
    out = subprocess.run(cmd + ["-o", "rsum", "pralign", "dtl", "stdout"], capture_output=True, text=True,
                         check=True).stdout
    utts = {m.group(1): tuple(int(x) for x in m.groups()[1:])
            for m in re.finditer(r"id: \((\S+)\)\n(?:Attributes:.*\n)?Scores: \(#C #S #D #I\) (\d+) (\d+) (\d+) (\d+)", out)}
    rows = {}
    for m in re.finditer(r"^\s*\|\s*(\S+)\s*\|\s*(\d+)\s+(\d+)\s*\|\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\|",
                         out, flags=re.M):
        rows[m.group(1)] = tuple(int(x) for x in m.groups()[1:])  # snt, ref, corr, sub, del, ins, err, s.err

    def section(title: str, pattern: str) -> Counter:
        start = out.index(title)
        body = out[start:out.index("-------", start)]
        return Counter({tuple(m.groups()[1:]) if len(m.groups()) > 2 else m.group(2): int(m.group(1))
                        for m in re.finditer(pattern, body)})

    confusions = section("CONFUSION PAIRS", r"\d+:\s+(\d+)\s+->\s+(\S+) ==> (\S+)")
    insertions = section("INSERTIONS", r"\d+:\s+(\d+)\s+->\s+(\S+)")
    deletions = section("DELETIONS", r"\d+:\s+(\d+)\s+->\s+(\S+)")
    return {"utts": utts, "rows": rows, "confusions": confusions, "insertions": insertions,
            "deletions": deletions, "text": out}


def assert_same_as_sclite(tmp: Path, pairs, char: bool = False):
    sc = run_sclite(tmp, pairs, char)
    res = score_pairs(pairs, "char" if char else "word", bootstrap=0)
    assert len(sc["utts"]) == len(pairs)
    for u in res.utterances:
        c = u.counts
        assert sc["utts"][u.id] == (c.correct, c.substitutions, c.deletions, c.insertions), (u.id, u.ops)
    t = res.total
    assert sc["rows"]["Sum"] == (t.sentences, t.ref_tokens, t.correct, t.substitutions, t.deletions,
                                 t.insertions, t.errors, t.sentence_errors)
    for spk, c in res.speakers.items():
        assert sc["rows"][spk] == (c.sentences, c.ref_tokens, c.correct, c.substitutions, c.deletions,
                                   c.insertions, c.errors, c.sentence_errors)
    assert res.confusions == Counter({k: v for k, v in sc["confusions"].items()})
    assert res.insertions == sc["insertions"]
    assert res.deletions == sc["deletions"]
    return res, sc


# ---------------------------------------------------------------------------------------------- sclite

BASIC = [
    ("spk1-1-0001", "the cat sat on the mat", "the cat sit on mat"),
    ("spk1-1-0002", "hello world", "hello world"),
    ("spk2-1-0001", "a b c", "x a b c y"),
    ("spk2-1-0002", "one two three four", "one too three for five"),
]


def test_basic_counts_equal_sclite(tmp_path):
    res, _ = assert_same_as_sclite(tmp_path, BASIC)
    t = res.total
    # 15 reference words; errors: sat->sit, the deleted, x/y inserted, two->too, four->for, five inserted.
    assert (t.ref_tokens, t.substitutions, t.deletions, t.insertions) == (15, 3, 1, 3)
    assert res.wer == pytest.approx(7 / 15)
    assert t.sentence_errors == 3 and t.sentence_error_rate == pytest.approx(0.75)
    assert res.speakers["spk1"].errors == 2 and res.speakers["spk2"].errors == 5


def test_empty_hypotheses_equal_sclite(tmp_path):
    pairs = [("s1-1-1", "a b c", ""), ("s1-1-2", "d", ""), ("s2-1-1", "e f", "e f")]
    res, _ = assert_same_as_sclite(tmp_path, pairs)
    assert (res.total.deletions, res.total.errors, res.total.sentence_errors) == (4, 4, 2)
    assert res.wer == pytest.approx(4 / 6)


def test_empty_references_equal_sclite(tmp_path):
    # sclite: an empty reference has 0 words; its hypothesis words are insertions and it is a sentence
    # error; empty/empty is a correct sentence. The insertions count in the corpus WER.
    pairs = [("s1-1-1", "", "extra words"), ("s1-1-2", "", ""), ("s2-1-1", "a b", "a")]
    res, sc = assert_same_as_sclite(tmp_path, pairs)
    assert sc["rows"]["s1"] == (2, 0, 0, 0, 0, 2, 2, 1)
    assert (res.total.ref_tokens, res.total.insertions, res.total.deletions) == (2, 2, 1)
    assert res.wer == pytest.approx(1.5)
    assert res.total.sentence_errors == 2
    assert res.speakers["s1"].error_rate is None  # sclite prints word counts instead of percents there


def test_all_references_empty_gives_undefined_wer(tmp_path):
    pairs = [("s1-1-1", "", "x"), ("s1-1-2", "", "")]
    res, sc = assert_same_as_sclite(tmp_path, pairs)
    assert res.wer is None and "UNDEF" in sc["text"]
    assert score_pairs(pairs, bootstrap=50).ci95 is None  # no resample has reference words
    assert res.total.sentence_error_rate == pytest.approx(0.5)


def test_insertions_only_equal_sclite(tmp_path):
    pairs = [("s1-1-1", "a b", "z a y b x"), ("s1-1-2", "c", "c c c")]
    res, _ = assert_same_as_sclite(tmp_path, pairs)
    assert (res.total.correct, res.total.substitutions, res.total.deletions, res.total.insertions) == (3, 0, 0, 5)
    assert res.wer == pytest.approx(5 / 3)


def test_unicode_words_and_characters_equal_sclite(tmp_path):
    pairs = [("ä1-1-1", "çà été ünï 北京 欢迎", "Çà ete ünï 北京 欢 迎"),
             ("ä1-1-2", "straße", "strasse"),
             ("b2-1-1", "ŝi iras hejmen", "ŝi iras")]
    res, _ = assert_same_as_sclite(tmp_path, pairs)
    assert res.total.substitutions == 4  # çà/Çà (case-sensitive), été/ete, 欢迎/欢, straße/strasse
    resc, _ = assert_same_as_sclite(tmp_path, pairs, char=True)
    assert resc.total.ref_tokens == sum(len("".join(r.split())) for _, r, _ in pairs)


def test_sclite_tie_breaking_differs_from_unit_cost(tmp_path):
    # sclite's 4/3/3 costs: "a b" vs "b c" is D + C + I (jiwer's Levenshtein says 2 substitutions).
    pairs = [("s1-1-1", "a b", "b c"), ("s1-1-2", "a b c", "c x y")]
    res, sc = assert_same_as_sclite(tmp_path, pairs)
    assert sc["utts"]["s1-1-1"] == (1, 0, 1, 1)
    assert sc["utts"]["s1-1-2"] == (0, 3, 0, 0)
    import jiwer

    unit = jiwer.process_words("a b", "b c")
    assert (unit.substitutions, unit.deletions, unit.insertions) == (2, 0, 0)


def test_many_random_utterances_equal_sclite(tmp_path):
    rng = random.Random(7)
    vocab = "a b c d e ab ba the cat ça é 猫".split()
    pairs = []
    for k in range(300):
        ref = " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 12)))
        hyp = " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 12)))
        pairs.append((f"{rng.randint(100, 105)}-7-{k:04d}", ref, hyp))
    # Some near-copies so the alignment has long runs of matches too.
    for k in range(60):
        ref = [rng.choice(vocab) for _ in range(rng.randint(1, 25))]
        hyp = [w if rng.random() > 0.2 else rng.choice(vocab) for w in ref if rng.random() > 0.1]
        pairs.append((f"200-1-{k:04d}", " ".join(ref), " ".join(hyp)))
    res, _ = assert_same_as_sclite(tmp_path, pairs)
    assert len(res.speakers) == 7
    assert_same_as_sclite(tmp_path, pairs, char=True)


def test_char_mode_ignores_word_boundaries_like_sclite(tmp_path):
    pairs = [("s1-1-1", "ab cd", "abcd"), ("s1-1-2", "hello", "he l lo")]
    res, _ = assert_same_as_sclite(tmp_path, pairs, char=True)
    assert res.total.errors == 0 and res.total.ref_tokens == 9


# ------------------------------------------------------------------------------------------ unit tests


def test_align_known_paths():
    assert align([], ["x"]) == [("I", None, "x")]
    assert align(["x"], []) == [("D", "x", None)]
    assert align([], []) == []
    assert align(list("abc"), list("abc")) == [("C", "a", "a"), ("C", "b", "b"), ("C", "c", "c")]
    # Substitution is preferred over deletion + insertion (4 < 6).
    assert align(["a"], ["b"]) == [("S", "a", "b")]


def test_errors_never_below_unit_cost_minimum():
    import jiwer

    rng = random.Random(3)
    for _ in range(200):
        r = [rng.choice("abcd") for _ in range(rng.randint(1, 9))]
        h = [rng.choice("abcd") for _ in range(rng.randint(1, 9))]
        ours = score_pairs([("u", " ".join(r), " ".join(h))], bootstrap=0).total
        unit = jiwer.process_words(" ".join(r), " ".join(h))
        lev = unit.substitutions + unit.deletions + unit.insertions
        assert ours.errors >= lev
        assert ours.correct + ours.substitutions + ours.deletions == len(r)
        assert ours.correct + ours.substitutions + ours.insertions == len(h)


def test_bootstrap_interval_is_seeded_and_matches_delta_method():
    import numpy as np

    rng = random.Random(0)
    pairs = []
    for k in range(200):
        ref = [rng.choice("abcdefgh") for _ in range(rng.randint(3, 15))]
        hyp = [w if rng.random() > 0.15 * (1 + k % 3) else rng.choice("abcdefgh") for w in ref]
        pairs.append((f"1-1-{k}", " ".join(ref), " ".join(hyp)))
    a = score_pairs(pairs, bootstrap=2000, seed=1)
    b = score_pairs(pairs, bootstrap=2000, seed=1)
    assert a.ci95 == b.ci95
    lo, hi = a.ci95
    assert lo < a.wer < hi
    # Delta-method standard error of the ratio sum(e) / sum(n) over utterances.
    e = np.array([u.counts.errors for u in a.utterances], float)
    n = np.array([u.counts.ref_tokens for u in a.utterances], float)
    r = e.sum() / n.sum()
    se = np.sqrt(((e - r * n) ** 2).sum()) / n.sum()
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.15)
    # The printed interval: the same resamples in percent.
    assert a.ci95_percent() == pytest.approx((100 * lo, 100 * hi))


def test_rates_are_fractions_and_percent_is_printed_from_counts():
    # 1 error in 800 words is exactly 0.125 %: 100 * (1 / 800) is not, and would print 0.13 instead of 0.12.
    pairs = [(f"s-1-{k}", "w " * 10, ("x " if k == 0 else "w ") + "w " * 9) for k in range(80)]
    res = score_pairs(pairs, bootstrap=0)
    assert res.wer == pytest.approx(1 / 800) and res.total.sentence_error_rate == pytest.approx(1 / 80)
    assert percent(1, 800) == 0.125 and format_percent(1, 800) == "0.12"
    assert format_percent(0, 0) == "UNDEF" and percent(3, 0) is None
    assert res.to_dict()["total"]["error_rate"] == 0.125  # summary.json stays in percent
    assert "\t0.12\n" in format_speakers(res)


def test_speaker_of_follows_sclite_rm_rule():
    assert speaker_of("1089-134686-0000") == "1089"
    assert speaker_of("x_y-z") == "x_y"
    assert speaker_of("utt7") is None


def test_read_formats(tmp_path):
    (tmp_path / "a.ltr").write_text("A | M A N |\n\nH I |\n")
    assert read_transcripts(tmp_path / "a.ltr").texts == ["A MAN", "", "HI"]
    assert ltr_to_words("T H E | C A T |") == "THE CAT"
    (tmp_path / "a.wrd").write_text("a  man\n\n")
    assert read_transcripts(tmp_path / "a.wrd").texts == ["a man", ""]
    (tmp_path / "a.trn").write_text("a man (u-1)\n\n (u-2)\n")
    t = read_transcripts(tmp_path / "a.trn")
    assert t.ids == ["u-1", "u-2"] and t.texts == ["a man", ""]


def test_trn_pairs_by_id_in_any_order(tmp_path):
    (tmp_path / "r.trn").write_text("a b (s-1)\nc (s-2)\n")
    (tmp_path / "h.trn").write_text("c (s-2)\na x (s-1)\n")
    rep = score_files(tmp_path / "r.trn", tmp_path / "h.trn", ScoreConfig(bootstrap=0))
    assert [u.id for u in rep.word.utterances] == ["s-1", "s-2"]
    assert rep.word.total.substitutions == 1 and rep.word.wer == pytest.approx(1 / 3)


def test_bad_files_are_errors_naming_them(tmp_path):
    (tmp_path / "r.trn").write_text("a b (s-1)\nc (s-2)\n")
    (tmp_path / "h.trn").write_text("a b (s-1)\nc (s-3)\n")
    with pytest.raises(ManifestError, match=r"r\.trn.*h\.trn.*s-2"):
        pair_transcripts(read_transcripts(tmp_path / "r.trn"), read_transcripts(tmp_path / "h.trn"))
    (tmp_path / "dup.trn").write_text("a (s-1)\nb (s-1)\n")
    with pytest.raises(ManifestError, match=r"dup\.trn:2: .*s-1.*line 1"):
        read_transcripts(tmp_path / "dup.trn")
    (tmp_path / "noid.trn").write_text("a (s-1)\nno id here\n")
    with pytest.raises(ManifestError, match=r"noid\.trn:2"):
        read_transcripts(tmp_path / "noid.trn")
    (tmp_path / "r.wrd").write_text("a\nb\n")
    (tmp_path / "h.wrd").write_text("a\n")
    with pytest.raises(ManifestError, match=r"r\.wrd has 2.*h\.wrd has 1"):
        score_files(tmp_path / "r.wrd", tmp_path / "h.wrd")
    (tmp_path / "bin.wrd").write_bytes(b"ok\n\xff\xfe\n")
    with pytest.raises(ManifestError, match=r"bin\.wrd:2: not valid UTF-8"):
        read_transcripts(tmp_path / "bin.wrd")


def test_normalisation_is_explicit(tmp_path):
    pairs = [("1-1-1", "Hello, World!", "hello world")]
    off = score_pairs(pairs, bootstrap=0)
    assert off.total.substitutions == 2
    from w2v2cli.score import score_texts

    on = score_texts(pairs, ScoreConfig(lowercase=True, remove_punctuation=True, bootstrap=0))
    assert on.word.total.errors == 0 and on.char.total.errors == 0


def test_wer_cer_helper():
    wer, cer = wer_cer(["a b c d"], ["a x c"])
    assert wer == pytest.approx(0.5) and cer == pytest.approx(0.5)


def test_report_files(tmp_path):
    rep = score_files(write_trn(tmp_path / "r.trn", BASIC, 1), write_trn(tmp_path / "h.trn", BASIC, 2),
                      ScoreConfig(bootstrap=100))
    paths = write_report(rep, tmp_path / "rep")
    names = sorted(p.name for p in paths)
    assert names == sorted(["summary.json", "pralign.word.txt", "pralign.char.txt", "speakers.word.tsv",
                            "speakers.char.tsv", "confusions.word.tsv", "confusions.char.tsv"])
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert summary["word"]["total"]["errors"] == 7 and summary["wer"] == pytest.approx(100 * 7 / 15)
    pra = (tmp_path / "rep" / "pralign.word.txt").read_text()
    assert "id: (spk1-1-0001)\nScores: (#C #S #D #I) 4 1 1 0\nREF:  the cat sat on the mat\n" in pra
    assert "sub\tsat\tsit\t1" in (tmp_path / "rep" / "confusions.word.tsv").read_text()
    assert "spk2\t2\t7\t5\t2\t0\t3\t5\t2\t71.43" in (tmp_path / "rep" / "speakers.word.tsv").read_text()
    assert not list((tmp_path / "rep").glob(".*"))  # no temp files left behind


# ------------------------------------------------------------------------------------------------- CLI


def test_cli_score_runs_and_reports(tmp_path):
    r = write_trn(tmp_path / "r.trn", BASIC, 1)
    h = write_trn(tmp_path / "h.trn", BASIC, 2)
    result = CliRunner().invoke(app, ["score", str(r), str(h), "--report", str(tmp_path / "rep"), "--cer"])
    assert result.exit_code == 0, result.output
    assert "46.67" in result.output  # 7 / 15 words
    assert "spk2" in result.output
    assert (tmp_path / "rep" / "summary.json").exists()


def test_cli_errors_exit_nonzero(tmp_path):
    (tmp_path / "r.trn").write_text("a (s-1)\n")
    (tmp_path / "h.trn").write_text("a (s-9)\n")
    proc = subprocess.run([sys.executable, "-m", "w2v2cli", "score", str(tmp_path / "r.trn"), str(tmp_path / "h.trn")],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "r.trn" in proc.stderr and "h.trn" in proc.stderr and "s-1" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "w2v2cli", "score", str(tmp_path / "missing.trn"),
                           str(tmp_path / "h.trn")], capture_output=True, text=True)
    assert proc.returncode != 0 and "missing.trn" in proc.stderr
