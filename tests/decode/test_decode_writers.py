"""Decode output files: hyp.wrd, hyp.trn, ref.trn and hyp.jsonl, in manifest order."""

from __future__ import annotations

import json

import pytest

from w2v2cli.decode import Hypothesis, utterance_ids, write_outputs
from w2v2cli.score import ScoreConfig, score_files


def _hyp(words, times=None, conf=None, score=None):
    return Hypothesis(words, times or [], conf or [], " ".join(words), score)


def test_utterance_ids():
    assert utterance_ids(["1089/134686/1089-134686-0000.flac", "1089/134686/1089-134686-0001.flac"]) == [
        "1089-134686-0000", "1089-134686-0001"]
    assert utterance_ids(["a/x.wav", "b/x.wav"]) == ["a_x", "b_x"]
    assert utterance_ids(["clips/my file (1).mp3"]) == ["my_file_1_"]


def test_write_outputs_and_score_them(tmp_path):
    ids = ["2-1-0002", "1-1-0001", "1-1-0003"]  # manifest order, not sorted
    hyps = [_hyp(["HELLO", "WORLD"], [(0.1, 0.5), (0.6, 0.9)], [0.91234, 0.5], score=-3.5), _hyp([]), _hyp(["A"])]
    refs = ["HELLO WORD", "NOTHING", "A"]
    paths = write_outputs(tmp_path, ids, hyps, refs)
    assert sorted(paths) == ["hyp.jsonl", "hyp.trn", "hyp.wrd", "ref.trn"]
    assert (tmp_path / "hyp.wrd").read_text() == "HELLO WORLD\n\nA\n"
    assert (tmp_path / "hyp.trn").read_text() == "HELLO WORLD (2-1-0002)\n (1-1-0001)\nA (1-1-0003)\n"
    assert (tmp_path / "ref.trn").read_text() == "HELLO WORD (2-1-0002)\nNOTHING (1-1-0001)\nA (1-1-0003)\n"
    records = [json.loads(line) for line in (tmp_path / "hyp.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ids
    assert records[0]["words"] == [{"word": "HELLO", "start": 0.1, "end": 0.5, "confidence": 0.9123},
                                   {"word": "WORLD", "start": 0.6, "end": 0.9, "confidence": 0.5}]
    assert records[0]["score"] == -3.5 and records[0]["ref"] == "HELLO WORD"
    assert records[1]["words"] == [] and "score" not in records[1]
    rep = score_files(tmp_path / "ref.trn", tmp_path / "hyp.trn", ScoreConfig(bootstrap=0))
    assert (rep.word.total.substitutions, rep.word.total.deletions, rep.word.total.ref_tokens) == (1, 1, 4)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_write_outputs_without_refs_and_bad_input(tmp_path):
    paths = write_outputs(tmp_path, ["u-1"], [_hyp(["X"])])
    assert "ref.trn" not in paths and not (tmp_path / "ref.trn").exists()
    with pytest.raises(ValueError, match="do not line up"):
        write_outputs(tmp_path, ["u-1", "u-2"], [_hyp(["X"])])
    with pytest.raises(ValueError, match="unique"):
        write_outputs(tmp_path, ["u-1", "u-1"], [_hyp(["X"]), _hyp(["Y"])])
