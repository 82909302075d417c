"""Speaking text into audio files: espeak-ng, flite and festival, then sox (and lame for MP3).

    >>> from w2v2cli.synth.speech import synthesize
    >>> from w2v2cli.synth.voices import Voice
    >>> synthesize("The dog slept.", Voice("espeak", "en+m3", 160, 50, "M"), Path("a.flac"), "en")

sox converts the synthesiser's wave file to 16-bit mono FLAC at the corpus's rate (dither off, so the output is
bit-exact for a seed); MP3 is written by `lame`, whose LAME header carries encoder delay and padding, so decoders
(libsndfile/mpg123) return exactly the samples that went in. `speak_all` runs many utterances in parallel; one
festival process speaks `FESTIVAL_BATCH` sentences (starting festival and loading a voice takes longer than
speaking a sentence).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from w2v2cli.errors import DataError, ToolMissingError
from w2v2cli.synth.voices import FESTIVAL_VOICES, Voice

FESTIVAL_BATCH = 25  # sentences per festival process
FESTIVAL_PACKAGES = "festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts"
_TOOLS = {"espeak": "espeak-ng", "flite": "flite", "sox": "sox", "lame": "lame", "festival": "text2wave"}


@dataclass(frozen=True)
class Speech:
    """One utterance to synthesise: the written `text` (with case and punctuation) said by `voice` into `path`,
    16-bit mono at `sample_rate`, as `fmt` ('flac' | 'mp3')."""

    text: str
    voice: Voice
    path: Path
    lang: str
    sample_rate: int
    fmt: str


def check_tools(*engines: str) -> None:
    """Raise ToolMissingError if espeak-ng / flite / festival (text2wave and its voices) / sox / lame are missing."""
    for engine in engines:
        exe = _TOOLS[engine]
        if shutil.which(exe) is None:
            raise ToolMissingError(f"'{exe}' is not installed; synthetic corpora need it",
                                   hint=f"apt-get install espeak-ng flite sox libsox-fmt-mp3 lame {FESTIVAL_PACKAGES} "
                                        "(or run: bash tools/install_system_deps.sh)")
        if engine == "festival":
            for name, (select, _, _) in FESTIVAL_VOICES.items():
                proc = subprocess.run(["festival", "-b", f"({select})"], capture_output=True, text=True)
                if proc.returncode != 0 or "not defined" in proc.stderr + proc.stdout:
                    raise ToolMissingError(f"festival voice '{name}' ({select}) is not installed",
                                           hint=f"apt-get install {FESTIVAL_PACKAGES}")


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise DataError(f"{what}: '{cmd[0]}' failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")


def synthesize(text: str, voice: Voice, out_path: Path, lang: str, sample_rate: int = 16000,
               fmt: str = "flac") -> None:
    """Speak `text` with `voice` into `out_path`: 16-bit mono FLAC at `sample_rate`, or MP3 via lame."""
    with tempfile.TemporaryDirectory(prefix="w2v2-tts-") as tmp:
        raw = os.path.join(tmp, "raw.wav")
        if voice.engine == "espeak":
            _run(["espeak-ng", "-v", voice.name, "-s", str(int(voice.speed)), "-p", str(int(voice.pitch)),
                  "-w", raw, "--", text], f"synthesising {out_path}")
        elif voice.engine == "festival":
            _festival([(text, voice, raw)], tmp, f"synthesising {out_path}")
        else:
            _run(["flite", "-voice", voice.name, "--setf", f"duration_stretch={voice.speed:.3f}",
                  "--setf", f"int_f0_target_mean={voice.pitch:.1f}", "-t", text, "-o", raw],
                 f"synthesising {out_path}")
        _convert(raw, out_path, sample_rate, fmt, tmp)


def _convert(raw: str, out_path: Path, sample_rate: int, fmt: str, tmp: str) -> None:
    """The synthesiser's wave file `raw` -> `out_path`: 16-bit mono FLAC at `sample_rate`, or MP3 via lame."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # -D: no dither, so the output is the same bits every run; vol keeps resampling from clipping
    if fmt == "flac":
        _run(["sox", "-D", "-V1", raw, "-r", str(sample_rate), "-b", "16", "-c", "1", str(out_path),
              "vol", "0.8"], f"converting {out_path}")
    elif fmt == "mp3":
        wav = os.path.join(tmp, "pcm.wav")
        _run(["sox", "-D", "-V1", raw, "-r", str(sample_rate), "-b", "16", "-c", "1", wav, "vol", "0.8"],
             f"converting {out_path}")
        _run(["lame", "--quiet", "-m", "m", "-b", "64", "--resample", f"{sample_rate / 1000:g}", wav,
              str(out_path)], f"encoding {out_path}")
    else:
        raise ValueError(f"unknown format {fmt!r}")


def _festival(items: Sequence[tuple[str, Voice, str]], tmp: str, what: str) -> None:
    """Speak each (text, voice, wave path) with festival, all in one process (starting festival and loading a
    voice takes longer than speaking a sentence)."""
    lines = []
    for text, voice, raw in items:
        select, _, method = FESTIVAL_VOICES[voice.name]
        lines.append(f"({select})")
        if method == "hts":  # the engine's speed rate is the inverse of a duration stretch; no F0 control
            lines.append(f"(set! hts_engine_params (append hts_engine_params '((\"-r\" {1 / voice.speed:.3f}))))")
        else:  # diphone voices: duration stretch, and the target F0 of the linear-regression intonation model
            lines.append(f"(Parameter.set 'Duration_Stretch {voice.speed:.3f})")
            lines.append(f"(set! int_lr_params '((target_f0_mean {voice.pitch:.1f}) (target_f0_std "
                         f"{0.14 * voice.pitch:.1f}) (model_f0_mean 170) (model_f0_std 34)))")
        quoted = text.replace("\\", " ").replace('"', " ")
        lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{quoted}")) "{raw}" \'riff)')
    script = os.path.join(tmp, "speak.scm")
    Path(script).write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = subprocess.run(["festival", "-b", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    missing = sum(not os.path.isfile(raw) for _, _, raw in items)
    if proc.returncode != 0 or missing:  # a Scheme error stops the script
        errors = "; ".join(line.strip() for line in proc.stderr.splitlines() if line.strip())
        raise DataError(f"{what}: 'festival' failed ({proc.returncode}; no audio for {missing} of {len(items)} "
                        f"sentences): {errors[-300:]}")


def _speak_batch(batch: list[Speech]) -> int:
    """One utterance of espeak-ng / flite, or up to `FESTIVAL_BATCH` of festival in one process; how many."""
    if batch[0].voice.engine != "festival":
        s = batch[0]
        synthesize(s.text, s.voice, s.path, s.lang, s.sample_rate, s.fmt)
        return 1
    with tempfile.TemporaryDirectory(prefix="w2v2-tts-") as tmp:
        raws = [os.path.join(tmp, f"{i}.wav") for i in range(len(batch))]
        _festival([(s.text, s.voice, raw) for s, raw in zip(batch, raws)], tmp, f"synthesising {batch[0].path.parent}")
        for s, raw in zip(batch, raws):
            _convert(raw, s.path, s.sample_rate, s.fmt, tmp)
    return len(batch)


def speak_all(speech: list[Speech], jobs: int, progress: bool, label: str) -> None:
    """Synthesise every utterance in `jobs` parallel pipelines (a progress bar titled `label` if `progress`)."""
    festival = [s for s in speech if s.voice.engine == "festival"]
    batches = [[s] for s in speech if s.voice.engine != "festival"]
    batches += [festival[i:i + FESTIVAL_BATCH] for i in range(0, len(festival), FESTIVAL_BATCH)]

    from rich.progress import Progress

    with Progress(transient=True, disable=not progress) as bar, \
            ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        task = bar.add_task(label, total=len(speech))
        for done in pool.map(_speak_batch, batches):
            bar.advance(task, done)
