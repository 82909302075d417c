#!/usr/bin/env python3
"""How does a CTC model do on speech unlike its training data: other text, other voices, other synthesisers?

    python3 bench/generalisation_probe.py exp/demo/finetune_pretrained/checkpoint_best --work exp/probe
    python3 bench/generalisation_probe.py CKPT_A CKPT_B --work exp/probe     # several models, the same probe

The demo's test set shares its grammar (~2,400 words) and its synthesisers with training. This probe does not:
- text: `docs`, sentences of Python's own documentation (`pydoc_data.topics`: technical prose, thousands of
  words the grammar never uses), and `harvard`, the 1969 IEEE "Harvard" sentences (lists 1-5, plain everyday
  English, the sentences speech intelligibility tests use);
- voices: flite `rms` (unit selection: recorded speech cut and joined; the demo's test holds it out too),
  festival's `ked` and `kal` diphone voices and its `slt` HTS voice (another synthesiser altogether: apt-get
  install festival festvox-kdlpc16k festvox-kallpc16k festvox-us-slt-hts), and four espeak-ng voices from
  the held-out test pool (`voice_pool`). A model trained on a corpus made with `w2v2 synth --festival-hours`
  (the demo's, since it adds 0.5 h) has heard festival's voices, other speaker settings of them: for it,
  flite `rms` and the espeak-ng voices are the unseen ones.
Each voice reads `--per-voice` sentences of each text. Greedy decoding (`w2v2 decode`), scored per voice
with `w2v2cli.score` (sclite rules). Festival voices that are not installed are left out, and the table says
so. The probe is seeded: every model meets the same audio.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import soundfile as sf

from w2v2cli.synth.voices import ESPEAK_LANG_VOICES, ESPEAK_VARIANTS, voice_pool
from w2v2cli.score import pair_transcripts, read_transcripts, wer_cer

#: IEEE Recommended Practice for Speech Quality Measurements (1969), lists 1-5, without the sentences with
#: apostrophes (the demo's alphabet has none)
HARVARD = """The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background.
These days a chicken leg is a rare dish. Rice is often served in round bowls. The juice of lemons makes fine punch.
The box was thrown beside the parked truck. The hogs were fed chopped corn and garbage.
Four hours of steady work faced us. A large size in stockings is hard to sell. The boy was there when the sun rose.
A rod is used to catch pink salmon. The source of the huge river is the clear spring.
Kick the ball straight and follow through. Help the woman get back to her feet.
A pot of tea helps to pass the evening. Smoky fires lack flame and heat. The salt breeze came across from the sea.
The girl at the booth sold fifty bonds. The small pup gnawed a hole in the sock.
The fish twisted and turned on the bent hook. Press the pants and sew a button on the vest.
The swan dive was far short of perfect. The beauty of the view stunned the young boy. Two blue fish swam in the tank.
Her purse was full of useless trash. The colt reared and threw the tall rider.
It snowed, rained, and hailed the same morning. Read verse out loud for pleasure.
Hoist the load to your left shoulder. Take the winding path to reach the lake.
Note closely the size of the gas tank. Wipe the grease off his dirty face. Mend the coat before you go out.
The wrist was badly strained and hung limp. The stray cat gave birth to kittens.
The young girl gave no clear response. The meal was cooked before the bell rang. What joy there is in living.
A king ruled the state in the early days. The ship was torn apart on the sharp reef.
Sickness kept him home the third week. The wide road shimmered in the hot sun. The lazy cow lay in the cool grass.
Lift the square stone over the fence. The rope will bind the seven books at once. Hop over the fence and plunge in.
The friendly gang left the drug store. Mesh wire keeps chicks inside."""

FESTIVAL = {"ked": "voice_ked_diphone", "kal": "voice_kal_diphone", "slt-hts": "voice_cmu_us_slt_arctic_hts"}


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())) if s.strip()]


def docs_sentences() -> list[str]:
    """Plain sentences of 5-14 words (letters, spaces, commas) from Python's documentation topics."""
    from pydoc_data.topics import topics

    out = set()
    for t in topics.values():
        for s in split_sentences(t):
            body = s[:-1]
            if not s.endswith(".") or re.search(r"[^A-Za-z ,]", body):
                continue
            words = body.replace(",", "").split()
            if 5 <= len(words) <= 14 and all(len(w) > 1 or w.lower() in ("a", "i") for w in words):
                out.add(s)
    return sorted(out)


def voices(rng: random.Random) -> tuple[list[tuple[str, str]], list[str]]:
    """(engine, voice) pairs to use, and notes on what was left out."""
    out, notes = [("flite", "rms")], []
    have_festival = shutil.which("text2wave") is not None
    for name, fn in FESTIVAL.items():
        ok = have_festival and subprocess.run(
            ["festival", "-b", f"({fn})"], capture_output=True, text=True).returncode == 0
        if ok:
            out.append(("festival", name))
        else:
            notes.append(f"festival voice {name} not installed: left out")
    test_pool = sorted(f"{b}+{v}" for b in ESPEAK_LANG_VOICES["en"] for v in ESPEAK_VARIANTS
                       if voice_pool(f"{b}+{v}") == "test")
    rng.shuffle(test_pool)
    out += [("espeak", v) for v in test_pool[:4]]
    return out, notes


def speak(engine: str, voice: str, text: str, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        raw = str(Path(tmp) / "raw.wav")
        if engine == "flite":
            cmd = ["flite", "-voice", voice, "-t", text, "-o", raw]
        elif engine == "espeak":
            cmd = ["espeak-ng", "-v", voice, "-s", "165", "-w", raw, "--", text]
        else:
            (Path(tmp) / "t.txt").write_text(text + "\n")
            cmd = ["text2wave", "-eval", f"({FESTIVAL[voice]})", str(Path(tmp) / "t.txt"), "-o", raw]
        subprocess.run(cmd, check=True, capture_output=True)
        subprocess.run(["sox", "-D", "-V1", raw, "-r", "16000", "-b", "16", "-c", "1", str(out), "vol", "0.8"],
                       check=True)


def build(work: Path, per_voice: int) -> tuple[dict[str, Path], dict[str, str], list[str]]:
    """The probe sets (manifest per text kind) and each utterance's voice; reused when complete."""
    done = work / "probe.json"
    if done.is_file():
        meta = json.loads(done.read_text())
        return {k: Path(v) for k, v in meta["manifests"].items()}, meta["voice_of"], meta["notes"]
    rng = random.Random(7)
    vs, notes = voices(rng)
    texts = {"docs": docs_sentences(), "harvard": split_sentences(HARVARD)}
    manifests, voice_of = {}, {}
    for kind, sents in texts.items():
        rng.shuffle(sents)
        d = work / kind
        d.mkdir(parents=True, exist_ok=True)
        rows, wrd, ltr = [], [], []
        k = 0
        for engine, voice in vs:
            for j in range(per_voice):
                text = sents[k % len(sents)]
                k += 1
                uid = f"{engine}-{voice}-{j:02d}".replace("+", "_")
                speak(engine, voice, text, d / f"{uid}.wav")
                words = re.sub(r"[^A-Z ]", "", text.upper()).split()
                rows.append(f"{uid}.wav\t{sf.info(str(d / f'{uid}.wav')).frames}")
                wrd.append(" ".join(words))
                ltr.append(" ".join("|".join(words)) + " |")
                voice_of[uid] = f"{engine}:{voice}"
        (d / "probe.tsv").write_text(str(d.resolve()) + "\n" + "\n".join(rows) + "\n")
        (d / "probe.wrd").write_text("\n".join(wrd) + "\n")
        (d / "probe.ltr").write_text("\n".join(ltr) + "\n")
        manifests[kind] = d / "probe.tsv"
    done.write_text(json.dumps({"manifests": {k: str(v) for k, v in manifests.items()}, "voice_of": voice_of,
                                "notes": notes}, indent=1) + "\n")
    return manifests, voice_of, notes


def score(ckpt: Path, manifest: Path, out: Path, voice_of: dict[str, str]) -> dict[str, tuple[float, float]]:
    """{voice or 'all': (WER %, CER %)} of greedy decoding."""
    subprocess.run(["w2v2", "decode", str(ckpt), str(manifest), "--out", str(out), "--decoder", "viterbi",
                    "--no-progress"], check=True, capture_output=True)
    groups: dict[str, tuple[list[str], list[str]]] = {}
    for uid, r, h in pair_transcripts(read_transcripts(out / "ref.trn"), read_transcripts(out / "hyp.trn")):
        for key in ("all", voice_of[uid]):
            groups.setdefault(key, ([], []))
            groups[key][0].append(r)
            groups[key][1].append(h)
    return {k: tuple(100 * x for x in wer_cer(r, h)) for k, (r, h) in sorted(groups.items())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ckpts", nargs="+", type=Path, help="CTC checkpoints (w2v2 decode accepts them)")
    ap.add_argument("--work", type=Path, required=True, help="where the probe audio and decodes go")
    ap.add_argument("--per-voice", type=int, default=12, help="sentences per voice and text kind")
    args = ap.parse_args(argv)
    manifests, voice_of, notes = build(args.work, args.per_voice)
    results = {}
    for i, ckpt in enumerate(args.ckpts):
        for kind, m in manifests.items():
            results[(str(ckpt), kind)] = score(ckpt, m, args.work / f"decode{i}_{kind}", voice_of)
    names = sorted({v for r in results.values() for v in r if v != "all"})
    print("greedy WER / CER % per voice; " + ("; ".join(notes) if notes else "all voices present"))
    print("| model | text | all | " + " | ".join(names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    for (ckpt, kind), r in results.items():
        cells = [f"{r[n][0]:.1f} / {r[n][1]:.1f}" if n in r else "-" for n in ["all"] + names]
        print(f"| {ckpt} | {kind} | " + " | ".join(cells) + " |")
    out = args.work / "results.json"
    out.write_text(json.dumps({f"{c}|{k}": r for (c, k), r in results.items()}, indent=1) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
