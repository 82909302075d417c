"""w2v2cli.synth.commonvoice: the Common Voice 17 layout, tsv files and clip lengths."""

from __future__ import annotations

import csv
import hashlib

import soundfile as sf

from w2v2cli.synth.commonvoice import CV_COLUMNS


def test_commonvoice_layout(cv_corpus):
    for lang in ("en", "de", "fr"):
        base = cv_corpus.root / lang
        rows_by_split = {}
        for split in ("train", "dev", "test", "validated", "invalidated", "other"):
            with open(base / f"{split}.tsv", newline="") as f:
                rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
            assert tuple(rows[0]) == CV_COLUMNS
            rows_by_split[split] = [dict(zip(rows[0], r)) for r in rows[1:]]
        assert len(rows_by_split["train"]) == 6 and len(rows_by_split["dev"]) == 4 and len(rows_by_split["test"]) == 4
        assert len(rows_by_split["validated"]) == 14 and rows_by_split["other"] == []
        train_s = {r["sentence"] for r in rows_by_split["train"]}
        assert not train_s & {r["sentence"] for r in rows_by_split["test"]}
        assert not {r["client_id"] for r in rows_by_split["train"]} & {r["client_id"] for r in rows_by_split["test"]}
        durations = dict(l.split("\t") for l in (base / "clip_durations.tsv").read_text().splitlines()[1:])
        for r in rows_by_split["validated"]:
            assert r["locale"] == lang and len(r["client_id"]) == 128
            assert r["sentence_id"] == hashlib.sha256(r["sentence"].encode()).hexdigest()
            assert r["sentence"][0].isupper() and r["sentence"][-1] in ".?"
            info = sf.info(base / "clips" / r["path"])
            assert (info.format, info.samplerate, info.channels) == ("MP3", 48000, 1)
            assert int(durations[r["path"]]) == round(1000 * info.frames / 48000)
