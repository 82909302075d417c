"""Batch inference over a manifest: emissions, greedy or beam decoding, forced alignment, output files.

    >>> res = decode_manifest("exp/ft/best", "data/test.tsv", "exp/decode", DecodeConfig(decoder="beam",
    ...                       lexicon="exp/lm/lexicon.txt", lm="exp/lm/lm.bin"))
    >>> res.wer, res.rtf                                             # 0.084 (a fraction), 0.05
    >>> align_manifest("exp/ft/best", "data/test.tsv", "exp/align")      # needs test.wrd or test.ltr

Utterances are sorted by length and grouped so a batch holds at most `batch_seconds` of padded audio, and
run under `torch.inference_mode` (optionally in bf16 autocast). Audio longer than `chunk_seconds` is cut
into windows that overlap by `chunk_overlap_seconds` on each side; each window contributes only the frames
of its centre, so the stitched emissions have exactly the frames of the whole file (frame f always covers
samples [f * hop, f * hop + receptive field)) and an hour of audio never runs through the transformer at
once. Outputs are written in manifest order (see `writers.py`).

An utterance whose audio cannot be read or holds NaN/inf samples is skipped with a warning: it gets an empty
hypothesis (so it counts as all deletions in WER/CER, never as correct), is marked `"skipped"` in hyp.jsonl, listed
in OUT/bad_audio.tsv and counted in the summary; more than `max_bad_files` such files stop the run with an error
naming them.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from w2v2cli.checkpoint.io import LoadedCheckpoint
from w2v2cli.data.labels import reference_words
from w2v2cli.decode.backends import EmissionBackend, TorchBackend, open_backend
from w2v2cli.decode.ctc import BeamSearchDecoder, Hypothesis, greedy_decode
from w2v2cli.decode.options import DecodeConfig, DecodeOptions
from w2v2cli.decode.timestamps import SAMPLE_RATE, forced_align_words
from w2v2cli.decode.writers import utterance_ids, write_alignments, write_outputs
from w2v2cli.errors import AudioError, ConfigError, DataError
from w2v2cli.runtime import configure_runtime
from w2v2cli.score import Counts, corpus_counts, format_percent

@dataclass
class DecodeResult:
    """Summary of one decoding run."""

    out_dir: Path
    files: dict[str, Path]
    utterances: int
    audio_seconds: float
    elapsed_seconds: float
    words: Counts | None = None  # corpus word counts against the references (None without references)
    chars: Counts | None = None
    ids: list[str] = field(default_factory=list)
    hypotheses: list[Hypothesis] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # utterance id -> why its audio was skipped
    precision: str = ""  # the model's dtype and why (`--dtype auto` says what it chose)

    @property
    def wer(self) -> float | None:
        """Word error rate as a fraction (0.25 = 25 %); None without references."""
        return self.words.error_rate if self.words is not None else None

    @property
    def cer(self) -> float | None:
        """Character error rate as a fraction; None without references."""
        return self.chars.error_rate if self.chars is not None else None

    @property
    def rtf(self) -> float:
        """Real-time factor: processing time / audio duration (lower is faster)."""
        return self.elapsed_seconds / self.audio_seconds if self.audio_seconds else float("nan")


class EmissionModel:
    """A CTC model wrapped for inference: waveforms -> log-probabilities `[frames, vocab]` per utterance.

    `source`: a backend (`backends.open_backend`: PyTorch or onnxruntime), or a loaded checkpoint, run by PyTorch
    on `device` in `dtype` ("bf16", or "auto" where it resolves to bf16, casts `source.model` in place, once)."""

    def __init__(self, source: EmissionBackend | LoadedCheckpoint, device: str = "cpu", dtype: str = "fp32"):
        self.backend = source if isinstance(source, EmissionBackend) else TorchBackend(source, device, dtype)
        self.vocab = self.backend.vocab
        self.cfg = self.backend.cfg
        self.hop = self.cfg.hop
        self.receptive_field = self.cfg.receptive_field
        self.dtype, self.dtype_reason = self.backend.dtype, self.backend.dtype_reason

    @property
    def model(self) -> torch.nn.Module:
        """The PyTorch model (torch backend only)."""
        return self.backend.model

    def frames(self, samples: int) -> int:
        return 0 if samples < self.receptive_field else (samples - self.receptive_field) // self.hop + 1

    @torch.inference_mode()
    def forward(self, waves: list[np.ndarray]) -> list[torch.Tensor]:
        """Pads a list of waveforms into one batch; returns each row's log-probabilities on the CPU."""
        lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
        batch = torch.zeros(len(waves), int(lengths.max()))
        for b, w in enumerate(waves):
            batch[b, : len(w)] = torch.from_numpy(w)
        logits, frame_lengths = self.backend.logits(batch, lengths)
        logp = logits.float().log_softmax(-1)
        if len(waves) == 1:
            return [logp[0]]
        return [logp[b, : int(n)] for b, n in enumerate(frame_lengths)]


def _windows(samples: int, hop: int, chunk: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Windows for a long file: (window_start, window_end, keep_first_frame, keep_end_frame), global frame
    indices; window starts are multiples of `hop` so window frames map onto global frames."""
    chunk = max(hop, chunk // hop * hop)
    overlap = -(-overlap // hop) * hop  # rounded up to whole frames
    out = []
    a = 0
    while a < samples:
        b = min(samples, a + chunk)
        if samples - b < chunk // 4:  # a short tail joins this window rather than being its own
            b = samples
        w0, w1 = max(0, a - overlap), min(samples, b + overlap)
        out.append((w0, w1, a // hop, b // hop if b < samples else -1))
        a = b
    return out


def compute_emissions(em: EmissionModel, items: list[tuple[int, Path, int]], load, cfg: DecodeOptions,
                      on_done: Callable[[int, torch.Tensor], None], tick: Callable[[int], None]) -> None:
    """Runs the model over `(index, path, num_samples)` items, calling `on_done(index, log_probs)` as each
    utterance's emissions are complete. Short files are batched by length; long ones go window by window.
    `load(path)` returns the waveform, or None for audio to skip (no `on_done` for it)."""
    budget = int(cfg.batch_seconds * SAMPLE_RATE)
    chunk = int(cfg.chunk_seconds * SAMPLE_RATE)
    # A window must hold every sample of the last frame it keeps: at least receptive field - hop of context.
    min_overlap = -(-(em.receptive_field - em.hop) // em.hop) * em.hop
    overlap = max(int(cfg.chunk_overlap_seconds * SAMPLE_RATE), min_overlap)
    short = sorted((it for it in items if it[2] <= chunk), key=lambda it: it[2])
    long = [it for it in items if it[2] > chunk]

    batch: list[tuple[int, np.ndarray]] = []
    width = 0

    def flush():
        nonlocal batch, width
        if batch:
            for (idx, _), lp in zip(batch, em.forward([w for _, w in batch])):
                on_done(idx, lp)
            tick(len(batch))
        batch, width = [], 0

    for idx, path, _ in short:
        wave = load(path)
        if wave is None:
            tick(1)
            continue
        if len(wave) < em.receptive_field:
            raise DataError(f"{path}: {len(wave)} samples is shorter than one model frame ({em.receptive_field})")
        new_width = max(width, len(wave))
        if batch and new_width * (len(batch) + 1) > budget:
            flush()
            new_width = len(wave)
        batch.append((idx, wave))
        width = new_width
    flush()

    for idx, path, _ in long:
        wave = load(path)
        if wave is None:
            tick(1)
            continue
        total = em.frames(len(wave))
        pieces = []
        wins = _windows(len(wave), em.hop, chunk, overlap)
        per_batch = max(1, budget // max(1, chunk + 2 * overlap))
        for k in range(0, len(wins), per_batch):
            group = wins[k: k + per_batch]
            outs = em.forward([wave[w0:w1] for w0, w1, _, _ in group])
            for (w0, _, keep0, keep1), lp in zip(group, outs):
                first = keep0 - w0 // em.hop
                last = (keep1 if keep1 >= 0 else total) - w0 // em.hop
                pieces.append(lp[first:last])
        lp = torch.cat(pieces)
        if lp.shape[0] != total:  # the stitching must give exactly the frames of the whole file
            raise RuntimeError(f"{path}: stitched {lp.shape[0]} frames, expected {total}")
        on_done(idx, lp)
        tick(1)


def _run(manifest_path: Path, cfg: DecodeConfig, em: EmissionModel,
         per_utt: Callable[[int, torch.Tensor], Hypothesis]):
    from tqdm import tqdm

    from w2v2cli.audio import load_audio
    from w2v2cli.data.manifest import read_manifest

    manifest = read_manifest(manifest_path)
    if len(manifest) == 0:
        raise DataError(f"{manifest_path}: the manifest has no utterances")
    normalize = bool(getattr(em.cfg, "normalize_audio", False))
    hyps: list[Hypothesis | None] = [None] * len(manifest)
    seconds = [0.0]
    bad: dict[Path, str] = {}

    def load(path: Path) -> np.ndarray | None:
        try:
            wave = load_audio(path, SAMPLE_RATE, normalize=normalize)
        except AudioError as err:
            bad[Path(path)] = err.message.split(": ", 1)[-1]
            tqdm.write(f"warning: skipped {path}: {bad[Path(path)]}", file=sys.stderr)
            if len(bad) > cfg.max_bad_files:
                shown = "\n  ".join(f"{p}: {r}" for p, r in list(bad.items())[:5])
                raise DataError(f"{len(bad)} audio files of {manifest_path} could not be used, more than "
                                f"--max-bad-files {cfg.max_bad_files}:\n  {shown}"
                                + (f"\n  ... and {len(bad) - 5} more" if len(bad) > 5 else ""),
                                hint="fix or remove them (`w2v2 manifest --verify --skip-bad` finds them all), "
                                     "or raise --max-bad-files") from None
            return None
        seconds[0] += len(wave) / SAMPLE_RATE
        return wave

    def done(idx: int, lp: torch.Tensor) -> None:
        hyps[idx] = per_utt(idx, lp)

    items = [(i, manifest.abspath(i), e.num_samples) for i, e in enumerate(manifest.entries)]
    start = time.perf_counter()
    with tqdm(total=len(items), unit="utt", disable=not cfg.progress, desc="decode") as bar:
        compute_emissions(em, items, load, cfg, done, bar.update)
    elapsed = time.perf_counter() - start
    ids = utterance_ids([e.path for e in manifest.entries])
    skipped = {}
    for i in range(len(manifest)):
        reason = bad.get(Path(manifest.abspath(i)))
        if reason is not None:
            skipped[ids[i]] = reason
            hyps[i] = Hypothesis([], [], [], "")  # scored as all deletions, never as correct
    return manifest, ids, hyps, seconds[0], elapsed, skipped


def _write_skipped(out_dir, manifest, ids: list[str], skipped: dict[str, str]) -> dict[str, Path]:
    """OUT/bad_audio.tsv (`id<TAB>path<TAB>reason`) when utterances were skipped; removes a stale one otherwise."""
    from w2v2cli.textio import atomic_write_text

    path = Path(out_dir) / "bad_audio.tsv"
    if not skipped:
        path.unlink(missing_ok=True)
        return {}
    rows = [f"{u}\t{manifest.abspath(i)}\t{' '.join(skipped[u].split())}\n" for i, u in enumerate(ids) if u in skipped]
    atomic_write_text(path, "id\tpath\treason\n" + "".join(rows))
    return {"bad_audio.tsv": path}


def utterance_decoder(cfg: DecodeOptions, vocab) -> Callable[[torch.Tensor], Hypothesis]:
    """The decoder `cfg` asks for, as a function of one utterance's log-probabilities `[frames, vocab]`:
    greedy best path, or the lexicon (+ KenLM) beam search (built once here)."""
    if cfg.decoder == "beam":
        beam = BeamSearchDecoder(vocab, cfg)
        return lambda lp: beam(lp.unsqueeze(0), torch.tensor([lp.shape[0]]))[0]
    return lambda lp: greedy_decode(lp.unsqueeze(0), None, vocab)[0]


def decode_manifest(ckpt, manifest_path, out_dir, cfg: DecodeConfig | None = None, loaded=None) -> DecodeResult:
    """Decodes every utterance of a manifest with a CTC checkpoint (any format `load_model_any` reads, or a `.onnx`
    file of `w2v2 export onnx`: `cfg.backend`) and writes hyp.wrd, hyp.trn, hyp.jsonl (and ref.trn when
    `X.wrd`/`X.ltr` sit beside `X.tsv`)."""
    cfg = cfg or DecodeConfig()
    cfg.check()
    configure_runtime(threads=cfg.threads)  # process-level CPU settings (keep-freed-memory, denormals): runtime.py
    manifest_path = Path(manifest_path)
    refs = reference_words(manifest_path)
    em = EmissionModel(open_backend(ckpt, cfg, loaded))
    decode_one = utterance_decoder(cfg, em.vocab)

    def per_utt(idx: int, lp: torch.Tensor) -> Hypothesis:
        return decode_one(lp)

    manifest, ids, hyps, seconds, elapsed, skipped = _run(manifest_path, cfg, em, per_utt)
    extras = [{"skipped": skipped[u]} if u in skipped else None for u in ids] if skipped else None
    files = write_outputs(out_dir, ids, hyps, refs, extras)
    files.update(_write_skipped(out_dir, manifest, ids, skipped))
    words = chars = None
    if refs is not None:
        words, chars = corpus_counts(refs, [h.text for h in hyps])
    return DecodeResult(Path(out_dir), files, len(hyps), seconds, elapsed, words, chars, ids, hyps, skipped,
                        f"{em.dtype} ({em.dtype_reason})")


def align_manifest(ckpt, manifest_path, out_dir, cfg: DecodeConfig | None = None, loaded=None) -> DecodeResult:
    """Force-aligns the reference transcripts (`X.wrd` or `X.ltr` beside `X.tsv`) to the audio; writes
    `align.jsonl` (words with start/end/confidence) and `align.ctm`."""
    cfg = cfg or DecodeConfig()
    cfg.check()
    configure_runtime(threads=cfg.threads)  # process-level CPU settings (keep-freed-memory, denormals): runtime.py
    manifest_path = Path(manifest_path)
    refs = reference_words(manifest_path)
    if refs is None:
        raise DataError(f"{manifest_path}: alignment needs reference transcripts beside the manifest "
                        f"({manifest_path.with_suffix('.wrd').name} or .ltr)")
    from w2v2cli.data.manifest import read_manifest

    ids_all = utterance_ids([e.path for e in read_manifest(manifest_path).entries])
    em = EmissionModel(open_backend(ckpt, cfg, loaded))

    def per_utt(idx: int, lp: torch.Tensor) -> Hypothesis:
        segs = forced_align_words(lp, refs[idx], em.vocab, utt_id=ids_all[idx])
        return Hypothesis.from_segments(segs)

    manifest, ids, hyps, seconds, elapsed, skipped = _run(manifest_path, cfg, em, per_utt)
    files = write_alignments(out_dir, ids, hyps)
    files.update(_write_skipped(out_dir, manifest, ids, skipped))
    return DecodeResult(Path(out_dir), files, len(hyps), seconds, elapsed, None, None, ids, hyps, skipped,
                        f"{em.dtype} ({em.dtype_reason})")


def summary_rows(res: DecodeResult) -> list[tuple[str, str]]:
    """(name, value) rows for the command's summary table."""
    rows = [("utterances", str(res.utterances)), ("audio hours", f"{res.audio_seconds / 3600:.4f}"),
            ("elapsed s", f"{res.elapsed_seconds:.2f}"),
            ("real-time factor", f"{res.rtf:.4f}" if not math.isnan(res.rtf) else "-")]
    if res.precision:
        rows.append(("precision", res.precision))
    if res.skipped:
        rows.append(("skipped (bad audio)", f"{len(res.skipped)}: empty hypotheses, scored as errors; "
                                            f"listed in bad_audio.tsv"))
    if res.wer is not None or res.cer is not None:  # percent from the counts, as `w2v2 score` prints it
        rows.append(("WER %", format_percent(res.words.errors, res.words.ref_tokens, undefined="-")))
        rows.append(("CER %", format_percent(res.chars.errors, res.chars.ref_tokens, undefined="-")))
    return rows
