"""recipes/librispeech/run.sh end to end at toy scale, real processes throughout (espeak-ng / flite speech, w2v2
commands, KenLM, torchrun, an HTTP server on 127.0.0.1 for stage 0):

- the full layout (seven subsets + Libri-light's splits): every stage's outputs, a re-run that does nothing, and
  `--stage 4 --stop-stage 4` that runs just the LM stage again;
- the most common download (train-clean-100, dev-clean, test-clean) fetched by stage 0 from a local mirror, one
  archive resumed from a truncated partial download, then `--init` from a fairseq checkpoint (no pretraining) and
  fine-tuning under torchrun;
- stage 0's refusals: a checksum mismatch is one line naming the archive and nothing is unpacked; a server that
  ignores Range sends the file again and the download still completes.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import subprocess
import sys
import tarfile
import threading
from functools import partial
from pathlib import Path

import pytest
import torch
import yaml

from recipe_helpers import RECIPES, TOY_TRAIN, ok, run_recipe, snapshot, stage_lines, stages_run
from w2v2cli.data.manifest import read_manifest
from w2v2cli.train.logging import read_metrics

RUN = RECIPES / "librispeech" / "run.sh"
TOY = ["--nj", "1", "--threads", "1", "--pretrain-config", "tiny", "--finetune-config", "tiny",
       "--pretrain-updates", "5", "--finetune-updates", "5", "--beam", "10",
       "--pretrain-opts", TOY_TRAIN, "--finetune-opts", TOY_TRAIN]
ALL = ["train-clean-100", "train-clean-360", "train-other-500", "dev-clean", "dev-other", "test-clean", "test-other"]


def run(*args) -> subprocess.CompletedProcess:
    return run_recipe(RUN, *args)


def test_full_layout_end_to_end_rerun_is_a_no_op_and_one_stage_runs_again(ls_full, tmp_path):
    exp = tmp_path / "exp"
    out = ok(run("--corpus", ls_full, "--dir", exp, "--download", "none", "--finetune-subsets", "train-10m", *TOY))
    data = exp / "data"
    # stage 1: a manifest with labels per subset; Libri-light's nested splits; the pretraining set of all training
    # audio (three roots -> one), and train-960
    for s in ALL + ["train-10m", "train-1h", "train-10h"]:
        m = read_manifest(data / f"{s}.tsv")
        for ext in ("wrd", "ltr"):
            assert len((data / f"{s}.{ext}").read_text().splitlines()) == len(m) > 0
    ll = ls_full / "librispeech_finetuning"
    count = {s: len(list((ll / s).rglob("*.flac"))) for s in ("1h/0", "1h", "9h")}
    assert [len(read_manifest(data / f"{s}.tsv")) for s in ("train-10m", "train-1h", "train-10h")] == [
        count["1h/0"], count["1h"], count["1h"] + count["9h"]]
    ten_m = read_manifest(data / "train-10m.tsv")
    assert all("/1h/0/" in str(ten_m.abspath(i)) for i in range(len(ten_m)))
    pre = read_manifest(data / "pretrain.tsv")
    trains = [read_manifest(data / f"{s}.tsv") for s in ALL[:3]]
    assert [pre.abspath(i) for i in range(len(pre))] == [m.abspath(i) for m in trains for i in range(len(m))]
    assert all(pre.abspath(i).is_file() for i in range(len(pre)))
    assert (data / "train-960.tsv").read_text() == (data / "pretrain.tsv").read_text()
    assert (data / "train-960.wrd").read_text() == "".join((data / f"{s}.wrd").read_text() for s in ALL[:3])
    # stage 2 and 3: checkpoints of the right runs, on the right data
    assert max(r["update"] for r in read_metrics(exp / "pretrain_tiny") if r.get("split") == "train") == 5
    assert (exp / "pretrain_tiny" / "checkpoint_last" / "model.safetensors").is_file()
    ft = exp / "finetune_train-10m"
    assert (ft / "checkpoint_best" / "model.safetensors").is_file()
    assert str(data / "train-10m.tsv") in (ft / "config.yaml").read_text()
    # stage 4, 5, 6: LM, greedy + 4-gram decodes of all four dev/test sets, reports and the table
    assert (exp / "lm_4gram" / "lm.bin").is_file() and (exp / "lm_4gram" / "lexicon.txt").is_file()
    table = (exp / "results.md").read_text()
    for s in ALL[3:]:
        n = len(read_manifest(data / f"{s}.tsv"))
        for dec in ("viterbi", "4gram"):
            d = exp / "decode" / "train-10m" / s / dec
            assert len((d / "hyp.trn").read_text().splitlines()) == n
            summary = json.loads((d / "report" / "summary.json").read_text())
            assert summary["word"]["total"]["sentences"] == n
            assert f"| train-10m | {s} | {dec} | {summary['wer']:.2f} | {summary['cer']:.2f} | {n} |" in table
    assert "Stage 0" not in out  # --download none
    # re-run: every stage is a no-op, nothing is rewritten
    before = snapshot(exp)
    again = ok(run("--corpus", ls_full, "--dir", exp, "--download", "none", "--finetune-subsets", "train-10m", *TOY))
    assert stage_lines(again) == [] and again.count("done before, skipped") == 1 + 1 + 1 + 1 + 4 + 1
    assert snapshot(exp) == before
    # --stage 4 --stop-stage 4: the LM stage alone runs again
    lm = ok(run("--corpus", ls_full, "--dir", exp, "--finetune-subsets", "train-10m", "--stage", 4, "--stop-stage",
                4, *TOY))
    assert stages_run(lm) == {"Stage 4"}
    changed = {p for p, t in snapshot(exp).items() if before.get(p) != t}
    assert changed and all("/lm_4gram/" in p or p.endswith(("lm_text.txt", "/.done/4")) for p in changed)


# ------------------------------------------------------------------------------------------------ stage 0
class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files, honouring `Range: bytes=N-` (http.server alone ignores it); logs (path, range) requests."""

    requests: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        rng = self.headers.get("Range")
        type(self).requests.append((self.path, rng))
        if not rng or not path.is_file():
            return super().do_GET()
        start = int(rng.removeprefix("bytes=").rstrip("-"))
        body = path.read_bytes()[start:]
        self.send_response(206)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Range", f"bytes {start}-{start + len(body) - 1}/{path.stat().st_size}")
        self.end_headers()
        self.wfile.write(body)


class PlainHandler(http.server.SimpleHTTPRequestHandler):
    requests: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).requests.append((self.path, self.headers.get("Range")))
        return super().do_GET()


@pytest.fixture
def serve():
    servers = []

    def start(folder: Path, handler) -> str:
        handler.requests = []
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(folder)))
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def archives(libri_root: Path, subsets, dest: Path) -> Path:
    """SUBSET.tar.gz holding LibriSpeech/SUBSET, as openslr.org's, and a sha256sum file of them."""
    dest.mkdir(parents=True, exist_ok=True)
    lines = []
    for s in subsets:
        with tarfile.open(dest / f"{s}.tar.gz", "w:gz") as tar:
            tar.add(libri_root / s, arcname=f"LibriSpeech/{s}")
        lines.append(f"{hashlib.sha256((dest / f'{s}.tar.gz').read_bytes()).hexdigest()}  {s}.tar.gz\n")
    (dest / "SHA256SUMS").write_text("".join(lines))
    return dest / "SHA256SUMS"


def fairseq_init(path: Path) -> Path:
    """A random wav2vec 2.0 pretraining checkpoint in fairseq's format (tiny BASE-family shapes)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "checkpoint"))
    import transformers
    from ckpt_helpers import fairseq_checkpoint, hf_model

    hf = hf_model(transformers.Wav2Vec2ForPreTraining, "base", seed=3)
    torch.save(fairseq_checkpoint(hf, "base", "new", normalize=False), path)
    return path


def test_common_download_resumed_then_init_and_torchrun_to_the_end(libri_corpus, serve, tmp_path):
    subsets = ["train-clean-100", "dev-clean", "test-clean"]
    sums = archives(libri_corpus.root, subsets, tmp_path / "mirror")
    url = serve(tmp_path / "mirror", RangeHandler)
    corpus = tmp_path / "corpus"
    # an interrupted earlier download: the first 40 % of train-clean-100.tar.gz
    whole = (tmp_path / "mirror" / "train-clean-100.tar.gz").read_bytes()
    (corpus / ".downloads").mkdir(parents=True)
    (corpus / ".downloads" / "train-clean-100.tar.gz.part").write_bytes(whole[: len(whole) * 2 // 5])
    init = fairseq_init(tmp_path / "wav2vec_small.pt")
    exp = tmp_path / "exp"
    out = ok(run("--corpus", corpus, "--dir", exp, "--download", " ".join(subsets), "--mirror", url,
                 "--checksums", sums, "--init", init, "--launcher", "torchrun --nproc-per-node 1 -m w2v2cli",
                 "--finetune-subsets", "train-clean-100", *TOY))
    # stage 0: the partial file continued from its last byte, the others fetched whole; unpacked, archives gone
    assert ("/train-clean-100.tar.gz", f"bytes={len(whole) * 2 // 5}-") in RangeHandler.requests
    assert ("/dev-clean.tar.gz", None) in RangeHandler.requests
    for s in subsets:
        got = sorted(p.relative_to(corpus / "LibriSpeech" / s) for p in (corpus / "LibriSpeech" / s).rglob("*"))
        assert got == sorted(p.relative_to(libri_corpus.root / s) for p in (libri_corpus.root / s).rglob("*"))
        assert (corpus / ".downloads" / f"{s}.done").is_file()
    assert not list((corpus / ".downloads").glob("*.tar.gz*"))
    # stage 2 imported the checkpoint instead of pretraining; stage 3 fine-tuned from it under torchrun
    assert "importing --init" in out and not (exp / "pretrain_tiny").exists()
    imported = yaml.safe_load((exp / "init" / "config.yaml").read_text())
    assert imported["kind"] == "pretrain" and imported["provenance"]["path"] == str(init)
    tuned = yaml.safe_load((exp / "finetune_train-clean-100" / "checkpoint_best" / "config.yaml").read_text())
    # the architecture is the checkpoint's (16 conv channels, 2 x 32 layers), not the tiny preset's (128, 4 x 192)
    assert (tuned["model"]["conv_layers"][0][0], tuned["model"]["encoder_layers"],
            tuned["model"]["encoder_embed_dim"]) == (16, 2, 32)
    # only the sets present are validated on, decoded and scored
    assert sorted(p.name for p in (exp / "decode" / "train-clean-100").iterdir()) == ["dev-clean", "test-clean"]
    table = (exp / "results.md").read_text()
    assert table.count("| train-clean-100 |") == 4
    # the download stage again: everything present, nothing fetched
    RangeHandler.requests.clear()
    ok(run("--corpus", corpus, "--dir", exp, "--download", " ".join(subsets), "--mirror", url, "--checksums", sums,
           "--stage", 0, "--stop-stage", 0))
    assert RangeHandler.requests == []


def test_download_checksum_mismatch_unpacks_nothing_and_a_server_without_range_restarts(libri_corpus, serve,
                                                                                        tmp_path):
    sums = archives(libri_corpus.root, ["dev-clean"], tmp_path / "mirror")
    good = sums.read_text()
    bad = tmp_path / "bad.sums"
    bad.write_text("0" * 64 + "  dev-clean.tar.gz\n")
    url = serve(tmp_path / "mirror", PlainHandler)
    corpus = tmp_path / "corpus"
    args = ["--corpus", corpus, "--dir", tmp_path / "exp", "--download", "dev-clean", "--mirror", url, "--stage", 0,
            "--stop-stage", 0]
    res = run(*args, "--checksums", bad)
    assert res.returncode == 1
    errors = [l for l in res.stderr.splitlines() if l.startswith("download.py:")]
    assert len(errors) == 1 and "dev-clean.tar.gz" in errors[0] and "0" * 64 in errors[0]
    assert not (corpus / "LibriSpeech").exists() and not list((corpus / ".downloads").glob("dev-clean*"))
    # a partial file, and a server that ignores Range (http.server): the whole file comes again, replacing it
    (corpus / ".downloads" / "dev-clean.tar.gz.part").write_bytes(b"stale bytes from elsewhere")
    sums.write_text(good)
    res = ok(run(*args, "--checksums", sums))
    assert PlainHandler.requests[-1] == ("/dev-clean.tar.gz", "bytes=26-")
    assert "ignored the range request" in res
    assert sorted(p.name for p in (corpus / "LibriSpeech" / "dev-clean").rglob("*.flac")) == sorted(
        p.name for p in (libri_corpus.root / "dev-clean").rglob("*.flac"))
    # an unknown part is an error naming it
    res = run(*args[:4], "--download", "train-clean-1000", *args[6:])
    assert res.returncode == 1 and "unknown part 'train-clean-1000'" in res.stderr
