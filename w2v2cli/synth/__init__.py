"""Synthetic speech corpora laid out exactly like LibriSpeech, Common Voice and MLS.

    >>> from w2v2cli.synth.librispeech import make_librispeech
    >>> corpus = make_librispeech("corpus/LibriSpeech", n_speakers=4, utts_per_speaker=10, seed=0)

Speech comes from espeak-ng (every language), flite (English) and festival (English, LibriSpeech training
speakers only); sentences from a seeded grammar per language: no sentence repeats within a corpus, and dev/test
subsets draw from hash-held-out sentence pools and voices that training never sees. Generation is deterministic
for a seed, runs `jobs` synthesis pipelines in parallel, and is atomic.

Modules, each importing only those above it:

- `lexicon_en`: the English grammar's word lists; `sentences`: the sentence generators and held-out pools.
- `voices`: the synthetic speakers (engines, voice tables, which split may use a voice, speaking time).
- `speech`: text -> audio file (espeak-ng / flite / festival, then sox / lame), many in parallel.
- `corpus`: `SynthCorpus`, a layout's `Plan`, and `build` (plan, synthesise, write; atomic, reused if complete).
- `splits`: the one split loop every layout shares (sizes, voices and sentences of each split).
- `librispeech`, `commonvoice`, `mls`: one layout each: a plan step and a write step.
"""
