#!/usr/bin/env bash
# XLSR-style multilingual wav2vec 2.0: one model pretrained on several Common Voice languages (sampled with
# probability proportional to (n_l/N)^alpha), then CTC fine-tuned and decoded per language.
#
# Each language must be an unpacked Common Voice folder: $corpus/<lang>/{clips/*.mp3,train.tsv,dev.tsv,test.tsv}.
#   bash recipes/xlsr/run.sh --corpus /data/cv --langs "de fr es"
#   bash recipes/xlsr/run.sh --corpus /data/cv --langs "de fr es" --stage 3 --stop-stage 5
# MP3 at 48 kHz is converted once to 16 kHz FLAC in stage 1 (decoding MP3 every epoch is the slow path).
set -euo pipefail
cd "$(dirname "$0")"
. ../utils/log.sh
. ../utils/interrupt.sh  # Ctrl-C / SIGTERM: the running stage saves, the recipe exits 130 / 143

stage=0               # first stage to run
stop_stage=100        # last stage to run
corpus=/data/cv       # directory with one Common Voice folder per language
langs="de fr es"      # languages (folder names under --corpus)
dir=exp               # output directory
pretrain_config=xlsr  # xlsr | tiny | FILE.yaml
finetune_config=xlsr  # fine-tuning preset or FILE.yaml
alpha=0.5             # language sampling exponent (XLSR: 0.5)
vocab=letters         # letters | spm (SentencePiece, e.g. for large alphabets)
nj=8                  # parallel jobs for conversion and manifests
launcher=w2v2         # e.g. "torchrun --nproc_per_node 8 -m w2v2cli" for several GPUs
. ../utils/parse_options.sh

data=$dir/data

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  for lang in $langs; do
    log "Stage 1: $lang manifests (MP3 -> 16 kHz FLAC, per-language text normalisation)"
    [ -d "$corpus/$lang/clips" ] || { echo "run.sh: no Common Voice folder at $corpus/$lang" >&2; exit 1; }
    w2v2 manifest "$corpus/$lang" --dest "$data/$lang" --corpus commonvoice --resample-to 16000 --jobs "$nj"
  done
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  log "Stage 2: multilingual pretraining on: $langs (alpha=$alpha)"
  manifests=()
  for lang in $langs; do manifests+=("$data/$lang/train.tsv"); done
  $launcher pretrain "${manifests[@]}" --config "$pretrain_config" --out "$dir/pretrain" \
    --set "data.sampling_alpha=$alpha" --resume auto
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  for lang in $langs; do
    log "Stage 3: CTC fine-tuning for $lang ($vocab vocabulary)"
    $launcher finetune "$data/$lang/train.tsv" --valid "$data/$lang/dev.tsv" --init "$dir/pretrain/checkpoint_last" \
      --config "$finetune_config" --vocab "$vocab" --out "$dir/finetune_$lang" --resume auto
  done
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  for lang in $langs; do
    log "Stage 4: decode and score $lang test"
    w2v2 decode "$dir/finetune_$lang/checkpoint_best" "$data/$lang/test.tsv" --out "$dir/decode_$lang"
    w2v2 score "$dir/decode_$lang/ref.trn" "$dir/decode_$lang/hyp.trn" --cer --report "$dir/decode_$lang/report"
  done
fi
