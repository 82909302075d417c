"""The bad-audio record (w2v2cli/train/bad_audio.py): each file once, kept across a resume up to the checkpoint,
counted against data.max_bad_files with an error that names the files."""

from __future__ import annotations

import pytest

from w2v2cli.errors import DataError
from w2v2cli.train.bad_audio import BAD_AUDIO_FILE, BadAudio


def test_each_file_is_recorded_and_warned_about_once(tmp_path):
    bad = BadAudio(tmp_path, resumed_update=None)
    warnings = bad.note(3, [("a.flac", "truncated\nfile"), ("b.flac", "NaN")], limit=10)
    assert warnings == ["skipped a.flac: truncated\nfile (listed in bad_audio.tsv; the run stops after more than "
                        "data.max_bad_files = 10)",
                        "skipped b.flac: NaN (listed in bad_audio.tsv; the run stops after more than "
                        "data.max_bad_files = 10)"]
    assert bad.note(5, [("a.flac", "truncated")], limit=10) == [] and bad.new == 2
    assert (tmp_path / BAD_AUDIO_FILE).read_text() == ("update\tpath\treason\n3\ta.flac\ttruncated file\n"
                                                       "3\tb.flac\tNaN\n")
    assert bad.settle(total=0, new_on_all_ranks=2, limit=10) == 2 and bad.new == 0


def test_a_resume_keeps_the_lines_up_to_its_checkpoint(tmp_path):
    (tmp_path / BAD_AUDIO_FILE).write_text("update\tpath\treason\n3\ta.flac\tx\n9\tb.flac\ty\n")
    bad = BadAudio(tmp_path, resumed_update=5)
    assert bad.seen == {"a.flac": "x"}  # b.flac was met after the checkpoint: met (and counted) again
    assert (tmp_path / BAD_AUDIO_FILE).read_text() == "update\tpath\treason\n3\ta.flac\tx\n"
    assert bad.note(7, [("b.flac", "y")], limit=10)
    before = (tmp_path / BAD_AUDIO_FILE).read_text()
    other_rank = BadAudio(tmp_path, resumed_update=5, rewrite=False)  # ranks > 0 read, never rewrite
    assert set(other_rank.seen) == {"a.flac"} and (tmp_path / BAD_AUDIO_FILE).read_text() == before
    assert set(BadAudio(tmp_path, resumed_update=7, rewrite=False).seen) == {"a.flac", "b.flac"}
    BadAudio(tmp_path, resumed_update=None)  # a fresh start drops every line
    assert (tmp_path / BAD_AUDIO_FILE).read_text() == "update\tpath\treason\n"


def test_more_than_the_limit_stops_with_the_files_named(tmp_path):
    bad = BadAudio(tmp_path, resumed_update=None)
    bad.note(1, [(f"{i}.flac", "unreadable") for i in range(7)], limit=6)
    with pytest.raises(DataError) as err:
        bad.settle(total=0, new_on_all_ranks=7, limit=6)
    text = err.value.message
    assert text.startswith("7 audio files could not be used, more than data.max_bad_files = 6")
    assert "0.flac: unreadable" in text and "4.flac" in text and "5.flac" not in text and "... and 2 more" in text
    assert "--resume auto" in err.value.hint
