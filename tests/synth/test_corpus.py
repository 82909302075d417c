"""w2v2cli.synth.corpus: determinism for a seed, reuse of a complete corpus, --force, atomic placement."""

from __future__ import annotations

import hashlib

import pytest
import soundfile as sf

from w2v2cli.errors import DataError
from w2v2cli.synth.librispeech import make_librispeech


def test_deterministic_reuse_and_force(tmp_path):
    sizes = {"train-clean-100": (1, 2), "test-clean": (1, 1)}
    a = make_librispeech(tmp_path / "a", subsets=sizes, seed=7, jobs=2)
    b = make_librispeech(tmp_path / "b", subsets=sizes, seed=7, jobs=1)
    c = make_librispeech(tmp_path / "c", subsets=sizes, seed=8, jobs=2)

    def digest(corpus):
        return [(u.path.relative_to(corpus.root).as_posix(), u.text,
                 hashlib.sha1(sf.read(u.path, dtype="int16")[0].tobytes()).hexdigest()) for u in corpus.utterances]

    assert digest(a) == digest(b)
    assert [t for _, t, _ in digest(a)] != [t for _, t, _ in digest(c)]
    # complete corpus with the same settings: reused, nothing rewritten
    mtime = a.utterances[0].path.stat().st_mtime_ns
    again = make_librispeech(tmp_path / "a", subsets=sizes, seed=7)
    assert digest(again) == digest(a) and again.utterances[0].path.stat().st_mtime_ns == mtime
    with pytest.raises(DataError, match="other settings"):
        make_librispeech(tmp_path / "a", subsets=sizes, seed=9)
    rebuilt = make_librispeech(tmp_path / "a", subsets=sizes, seed=8, force=True)
    assert [t for _, t, _ in digest(rebuilt)] == [t for _, t, _ in digest(c)]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("user data")
    with pytest.raises(DataError, match="refusing to overwrite"):
        make_librispeech(tmp_path / "mine", subsets=sizes, seed=1)
    assert (tmp_path / "mine" / "keep.txt").read_text() == "user data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c", "mine"]  # no temp dirs left
