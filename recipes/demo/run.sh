#!/usr/bin/env bash
# The whole wav2vec 2.0 pipeline on a laptop, on synthetic speech (espeak-ng + flite), in minutes:
#   synthesise a LibriSpeech-layout corpus -> manifests -> pretrain (tiny) -> fine-tune with CTC on a small
#   labeled subset -> build a KenLM 4-gram -> decode (greedy and beam + LM) -> score.
# Needs nothing downloaded. Run everything:        bash recipes/demo/run.sh
# Run one stage (here: decoding) again:            bash recipes/demo/run.sh --stage 6 --stop-stage 6
# Outputs go to --dir (default exp/demo). Every stage is safe to re-run (a .done marker per stage).
set -euo pipefail
cd "$(dirname "$0")"
. ../utils/log.sh
. ../utils/interrupt.sh  # Ctrl-C / SIGTERM: the running stage saves, the recipe exits 130 / 143

stage=0                 # first stage to run
stop_stage=100          # last stage to run
dir=../../exp/demo      # where corpus, manifests, models and results go
hours=1.0               # hours of synthetic training audio (unlabeled pool)
labeled_utts=150        # utterances of train-clean-100 kept with labels for fine-tuning
pretrain_updates=600    # pretraining updates (tiny preset)
finetune_updates=400    # fine-tuning updates
seed=42                 # seed for corpus, splits and training
nj=2                    # parallel jobs for synthesis and manifests
. ../utils/parse_options.sh

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
corpus=$dir/corpus
data=$dir/data

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ] && [ ! -f "$dir/.synth.done" ]; then
  log "Stage 0: synthesise a LibriSpeech-layout corpus ($hours h train + dev/test) in $corpus"
  w2v2 synth librispeech "$corpus" --hours "$hours" --seed "$seed" --jobs "$nj"
  touch "$dir/.synth.done"
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ] && [ ! -f "$dir/.manifest.done" ]; then
  log "Stage 1: fairseq manifests (.tsv/.wrd/.ltr/dict.ltr.txt) in $data"
  w2v2 manifest "$corpus" --dest "$data" --corpus librispeech --jobs "$nj"
  ../utils/subset_manifest.sh "$data/train-clean-100" "$data/train-labeled" "$labeled_utts" "$seed"
  touch "$dir/.manifest.done"
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ] && [ ! -f "$dir/.pretrain.done" ]; then
  log "Stage 2: self-supervised pretraining of the tiny model on all training audio"
  w2v2 pretrain "$data/train-clean-100.tsv" --valid "$data/dev-clean.tsv" --config tiny \
    --out "$dir/pretrain" --max-updates "$pretrain_updates" --seed "$seed" --resume auto
  touch "$dir/.pretrain.done"
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ] && [ ! -f "$dir/.finetune.done" ]; then
  log "Stage 3: CTC fine-tuning on $labeled_utts labeled utterances"
  w2v2 finetune "$data/train-labeled.tsv" --valid "$data/dev-clean.tsv" --init "$dir/pretrain/checkpoint_last" \
    --config tiny --out "$dir/finetune" --max-updates "$finetune_updates" --seed "$seed" --resume auto
  touch "$dir/.finetune.done"
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ] && [ ! -f "$dir/.lm.done" ]; then
  log "Stage 4: KenLM 4-gram and lexicon from the training transcripts"
  [ -x ../../tools/kenlm/bin/lmplz ] || command -v lmplz >/dev/null || bash ../../tools/install_kenlm.sh
  w2v2 lm build "$data/train-clean-100.wrd" --order 4 --out "$dir/lm"
  touch "$dir/.lm.done"
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  for decoder in viterbi beam; do
    log "Stage 5: decode test-clean ($decoder)"
    extra=()
    [ $decoder = beam ] && extra=(--lexicon "$dir/lm/lexicon.txt" --lm "$dir/lm/lm.bin" --beam 100 --lm-weight 2.0 --word-score -1.0)
    w2v2 decode "$dir/finetune/checkpoint_best" "$data/test-clean.tsv" --out "$dir/decode/$decoder" \
      --decoder $decoder "${extra[@]}"
  done
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  for decoder in viterbi beam; do
    log "Stage 6: score test-clean ($decoder)"
    w2v2 score "$dir/decode/$decoder/ref.trn" "$dir/decode/$decoder/hyp.trn" --report "$dir/decode/$decoder/report"
  done
fi
log "Done. Results: $dir/decode/*/report"
