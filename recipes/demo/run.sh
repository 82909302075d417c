#!/usr/bin/env bash
# The whole wav2vec 2.0 pipeline on a laptop, on synthetic speech (espeak-ng + flite + festival), in minutes:
#   synthesise a LibriSpeech-layout corpus (many voices; dev/test voices and 4 % of the words never in training)
#   -> manifests and a labelled subset (all by default; --labeled-speakers N: few voices) -> pretrain on all audio
#   -> fine-tune with CTC on the labelled subset (and, with --scratch true, the same without pretraining)
#   -> KenLM 4-gram on the LM text -> decode test-clean (greedy and beam + LM) -> score -> one results table.
# Needs nothing downloaded. Run everything:        bash recipes/demo/run.sh
# Run one stage (here: decoding) again:            bash recipes/demo/run.sh --stage 5 --stop-stage 5
# Outputs go to --dir (default exp/demo). Every stage is safe to re-run (a .done marker per stage, written only
# when the stage succeeded).
set -euo pipefail
cd "$(dirname "$0")"
. ../utils/log.sh
. ../utils/interrupt.sh  # Ctrl-C / SIGTERM: the running stage saves, the recipe exits 130 / 143

stage=0                 # first stage to run
stop_stage=100          # last stage to run
dir=../../exp/demo      # where corpus, manifests, models and results go
hours=4.0               # hours of synthetic training audio (the unlabelled pool; 2.0: test CER ~1-2 points higher,
                        # 4-gram WER ~2; bench/ARCHIVE.md, 19th search)
speakers=240            # voices in the training pool (dev and test get 80 voices each, none heard in training)
lm_sentences=300000     # text-only sentences for the language model (30,000: 4-gram dev WER 1.8-2.3 points higher)
open_vocab_hours=0      # + hours of open-vocabulary training sentences (1.25: better on technical prose, worse
                        # on the demo's test; bench/ARCHIVE.md, 15th search)
festival_hours=0.5      # + hours read by 15 more training speakers of a third synthesiser, festival (test CER level,
                        # held-out flite voice -4 points, festival voices -4 to -16; bench/ARCHIVE.md, 16th search)
labeled_speakers=all    # voices of the labelled subset (all, or few = the paper's low-resource setting)
labeled_minutes=all     # minutes of labelled audio for fine-tuning (all: every utterance of those voices)
config=tiny_fbank       # model and training preset: tiny_fbank (log-mel front end) or tiny (raw-waveform conv
                        # stack: 1.8x slower per audio second in bf16, test CER ~3 points higher; bench/ARCHIVE.md, 17th)
pretrain_minutes=1.5    # pretraining time budget in minutes (as many updates as fit; empty: --pretrain-updates alone)
pretrain_updates=       # cap on pretraining updates (0 = no pretraining, fine-tune from scratch; empty: no cap)
finetune_minutes=8.0    # fine-tuning time budget in minutes, per model (empty: --finetune-updates alone)
finetune_updates=       # cap on fine-tuning updates (empty: no cap)
scratch=false           # also fine-tune without pretraining, for the pretrained-vs-scratch rows
finetune_mask_prob=     # time-mask probability while fine-tuning (empty: the preset's, 0; few labels: 0.3)
finetune_set=""         # more fine-tuning settings, "key=value key=value" (each becomes w2v2 finetune --set)
lm_weight=2.0           # LM weight of the beam search (best of 1.0-2.5 on dev-clean for tiny_fbank; BENCHMARKS.md)
word_score=0            # score added per word in the beam search
beam=2000               # beam size of the search (dev WER 24.8 % at 500, 22.5 % at 2000 with the two below)
beam_tokens=10          # letters expanded per frame (all: twice the time for the same WER)
beam_threshold=25       # prune hypotheses this far below the best (15: 2 points worse; bench/ARCHIVE.md, 19th)
threads=                # CPU threads per training process (empty: one per core)
dtype=auto              # training precision: auto (bf16 on CPUs/GPUs with bf16 units, else fp32), fp32, bf16
seed=42                 # seed for corpus, splits and training
nj=2                    # parallel jobs for synthesis and manifests
. ../utils/parse_options.sh

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
corpus=$dir/corpus
data=$dir/data
thread_opt=()
[ -n "$threads" ] && thread_opt=(--threads "$threads")
models=(pretrained)
[ "$pretrain_updates" = 0 ] && models=(scratch)
[ "$scratch" = true ] && [ "$pretrain_updates" != 0 ] && models+=(scratch)
# how long each training runs: a time budget (--max-minutes) and/or a number of updates (--max-updates)
length_opts() {  # minutes updates
  local opts=()
  [ -n "$1" ] && opts+=(--max-minutes "$1")
  [ -n "$2" ] && opts+=(--max-updates "$2")
  [ ${#opts[@]} -gt 0 ] || { echo "run.sh: set a time budget (--*-minutes) or a number of updates (--*-updates)" >&2; exit 1; }
  echo "${opts[@]}"
}
pretrain_length=$(length_opts "$pretrain_minutes" "$pretrain_updates")
finetune_length=$(length_opts "$finetune_minutes" "$finetune_updates")

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ] && [ ! -f "$dir/.synth.done" ]; then
  log "Stage 0: synthesise a LibriSpeech-layout corpus ($hours h + $open_vocab_hours h open vocabulary + $festival_hours h festival, $speakers voices, + dev/test, + LM text) in $corpus"
  w2v2 synth librispeech "$corpus" --hours "$hours" --speakers "$speakers" --lm-sentences "$lm_sentences" \
    --open-vocab-hours "$open_vocab_hours" --festival-hours "$festival_hours" --seed "$seed" --jobs "$nj"
  touch "$dir/.synth.done"
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ] && [ ! -f "$dir/.manifest.done" ]; then
  log "Stage 1: fairseq manifests (.tsv/.wrd/.ltr/dict.ltr.txt) in $data, labelled subset from $labeled_speakers voices"
  w2v2 manifest "$corpus" --dest "$data" --corpus librispeech --jobs "$nj"
  ../utils/subset_speakers.sh "$data/train-clean-100" "$data/train-labeled" "$labeled_speakers" \
    "$labeled_minutes" "$seed"
  touch "$dir/.manifest.done"
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ] && [ "$pretrain_updates" != 0 ] && [ ! -f "$dir/.pretrain.done" ]; then
  log "Stage 2: self-supervised pretraining of the tiny model on all training audio ($pretrain_length)"
  # validation + checkpoint every 250 updates (the preset's 100 took a fifth of a 2-minute budget)
  # shellcheck disable=SC2086  # the length options are words
  w2v2 pretrain "$data/train-clean-100.tsv" --valid "$data/dev-clean.tsv" --config "$config" \
    --out "$dir/pretrain" $pretrain_length --seed "$seed" --resume auto --dtype "$dtype" \
    --set checkpoint.save_interval_updates=250 "${thread_opt[@]}"
  touch "$dir/.pretrain.done"
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  for model in "${models[@]}"; do
    [ -f "$dir/.finetune_$model.done" ] && continue
    init=none
    [ "$model" = pretrained ] && init=$dir/pretrain/checkpoint_last
    log "Stage 3: CTC fine-tuning ($model) on the labelled subset ($finetune_length)"
    ft_opts=()
    [ -n "$finetune_mask_prob" ] && ft_opts=(--set "model.mask_prob=$finetune_mask_prob")
    for kv in $finetune_set; do ft_opts+=(--set "$kv"); done
    # shellcheck disable=SC2086  # the length options are words
    w2v2 finetune "$data/train-labeled.tsv" --valid "$data/dev-clean.tsv" --init "$init" --config "$config" \
      --out "$dir/finetune_$model" $finetune_length --seed "$seed" --resume auto --dtype "$dtype" \
      "${ft_opts[@]}" "${thread_opt[@]}"
    touch "$dir/.finetune_$model.done"
  done
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ] && [ ! -f "$dir/.lm.done" ]; then
  log "Stage 4: KenLM 4-gram and lexicon from the LM text"
  [ -x ../../tools/kenlm/bin/lmplz ] || command -v lmplz >/dev/null || bash ../../tools/install_kenlm.sh
  w2v2 lm build "$corpus/librispeech-lm-norm.txt" --order 4 --out "$dir/lm"
  touch "$dir/.lm.done"
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  for model in "${models[@]}"; do
    for decoder in viterbi beam; do
      log "Stage 5: decode test-clean ($model, $decoder)"
      extra=()
      [ $decoder = beam ] && extra=(--lexicon "$dir/lm/lexicon.txt" --lm "$dir/lm/lm.bin" --beam "$beam" \
                                    --beam-tokens "$beam_tokens" --beam-threshold "$beam_threshold" \
                                    --lm-weight "$lm_weight" --word-score "$word_score")
      w2v2 decode "$dir/finetune_$model/checkpoint_best" "$data/test-clean.tsv" \
        --out "$dir/decode/${model}_$decoder" --decoder $decoder --no-progress "${extra[@]}" "${thread_opt[@]}"
    done
  done
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  for model in "${models[@]}"; do
    for decoder in viterbi beam; do
      log "Stage 6: score test-clean ($model, $decoder)"
      w2v2 score "$dir/decode/${model}_$decoder/ref.trn" "$dir/decode/${model}_$decoder/hyp.trn" \
        --report "$dir/decode/${model}_$decoder/report" > "$dir/decode/${model}_$decoder/score.txt"
    done
  done
  log "Results on test-clean (voices and sentences never seen in training):"
  python3 local/results.py "$dir/decode" | tee "$dir/results.txt"
fi
log "Done. Results: $dir/results.txt; reports: $dir/decode/*/report"
