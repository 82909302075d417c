#!/usr/bin/env bash
# wav2vec 2.0 on LibriSpeech: BASE pretraining on the 960 h, CTC fine-tuning, 4-gram KenLM decoding, scoring.
#
# The corpus must already be on disk, unpacked as distributed:
#   $corpus/LibriSpeech/{train-clean-100,train-clean-360,train-other-500,dev-clean,dev-other,test-clean,test-other}
# and, for the LM, LibriSpeech's normalised LM text (librispeech-lm-norm.txt) at --lm-text (optional: without it
# the LM is built from the training transcripts).
#
#   bash recipes/librispeech/run.sh --corpus /data/librispeech                     # everything
#   bash recipes/librispeech/run.sh --corpus /data/librispeech --stage 3 --stop-stage 3   # fine-tuning only
# Multi-GPU / multi-node: pass the torchrun launcher, e.g. --launcher "torchrun --nproc_per_node 8".
set -euo pipefail
cd "$(dirname "$0")"
. ../utils/log.sh
. ../utils/interrupt.sh  # Ctrl-C / SIGTERM: the running stage saves, the recipe exits 130 / 143

stage=0                    # first stage to run
stop_stage=100             # last stage to run
corpus=/data/librispeech   # directory holding LibriSpeech/ (see header)
lm_text=                   # LibriSpeech LM text (librispeech-lm-norm.txt); empty: use training transcripts
dir=exp                    # output directory (manifests, models, decodes)
pretrain_config=base       # base | large | xlsr | FILE.yaml
finetune_config=base_100h  # base_10m | base_1h | base_10h | base_100h | base_960h | large_* | FILE.yaml
finetune_subset=train-clean-100  # labeled subset used for fine-tuning
nj=8                       # parallel jobs for manifests
launcher=w2v2              # e.g. "torchrun --nproc_per_node 8 -m w2v2cli" for several GPUs
beam=500                   # beam size for LM decoding
lm_weight=2.0              # LM weight
word_score=-1.0            # word insertion score
. ../utils/parse_options.sh

data=$dir/data
src=$corpus/LibriSpeech
[ -d "$src" ] || { echo "run.sh: no LibriSpeech at $src (see the header of this script)" >&2; exit 1; }

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "Stage 1: manifests with labels for every subset"
  w2v2 manifest "$src" --dest "$data" --corpus librispeech --jobs "$nj"
  # the 960 h pretraining manifest is the three training subsets together
  { head -n 1 "$data/train-clean-100.tsv"
    for s in train-clean-100 train-clean-360 train-other-500; do [ -f "$data/$s.tsv" ] && tail -n +2 "$data/$s.tsv"; done
  } > "$data/train-960.tsv.tmp" && mv "$data/train-960.tsv.tmp" "$data/train-960.tsv"
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  log "Stage 2: self-supervised pretraining ($pretrain_config)"
  $launcher pretrain "$data/train-960.tsv" --valid "$data/dev-other.tsv" --config "$pretrain_config" \
    --out "$dir/pretrain_$pretrain_config" --resume auto
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  log "Stage 3: CTC fine-tuning on $finetune_subset ($finetune_config)"
  $launcher finetune "$data/$finetune_subset.tsv" --valid "$data/dev-other.tsv" \
    --init "$dir/pretrain_$pretrain_config/checkpoint_last" --config "$finetune_config" \
    --out "$dir/finetune_$finetune_config" --resume auto
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  log "Stage 4: 4-gram KenLM and lexicon"
  [ -x ../../tools/kenlm/bin/lmplz ] || command -v lmplz >/dev/null || bash ../../tools/install_kenlm.sh
  text=${lm_text:-$data/train-960.wrd}
  if [ -z "$lm_text" ]; then
    cat "$data"/train-clean-100.wrd "$data"/train-clean-360.wrd "$data"/train-other-500.wrd 2>/dev/null > "$text"
  fi
  w2v2 lm build "$text" --order 4 --out "$dir/lm_4gram"
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  for test in dev-clean dev-other test-clean test-other; do
    log "Stage 5: decode $test (viterbi, then 4-gram beam $beam)"
    w2v2 decode "$dir/finetune_$finetune_config/checkpoint_best" "$data/$test.tsv" --out "$dir/decode/$test/viterbi"
    w2v2 decode "$dir/finetune_$finetune_config/checkpoint_best" "$data/$test.tsv" --out "$dir/decode/$test/4gram" \
      --decoder beam --lexicon "$dir/lm_4gram/lexicon.txt" --lm "$dir/lm_4gram/lm.bin" \
      --beam "$beam" --lm-weight "$lm_weight" --word-score "$word_score"
  done
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  for d in "$dir"/decode/*/*/; do
    log "Stage 6: score $d"
    w2v2 score "$d/ref.trn" "$d/hyp.trn" --report "$d/report"
  done
fi
