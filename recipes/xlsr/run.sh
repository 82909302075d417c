#!/usr/bin/env bash
# XLSR-style multilingual wav2vec 2.0 (Conneau et al. 2020): one model pretrained on several languages of Common
# Voice and Multilingual LibriSpeech (language l sampled with probability ~ (n_l/N)^alpha), or imported (--init
# XLSR-53 / XLS-R); then CTC fine-tuning, greedy decoding and scoring per language, and one CER/WER table across
# languages (RESULTS.md has the published figures).
#
# Corpus (--corpus): one folder holding, per language, as unpacked from the official downloads,
#   Common Voice:  $corpus/<lang>/{clips/*.mp3,train.tsv,dev.tsv,test.tsv}   (e.g. cv-corpus-17.0-2024-03-15/de)
#   MLS:           $corpus/mls_<language>/{train,dev,test}/{transcripts.txt,audio/}   (mls_german, or mls_german_opus)
# A language is taken from whichever is present (--corpus-kind auto); "de:mls fr:cv" in --langs chooses per language.
#
#   bash recipes/xlsr/run.sh --corpus /data/xlsr --langs "de fr es"                      # everything
#   bash recipes/xlsr/run.sh --corpus /data/xlsr --langs "de:cv de:mls fr:mls" --stage 3 --stop-stage 3
#   bash recipes/xlsr/run.sh --corpus /data/xlsr --langs "de fr zh-CN" --vocab "letters zh-CN:spm" --vocab-size 3000
#   bash recipes/xlsr/run.sh --corpus /data/xlsr --langs "de fr" --init xlsr_53_56k.pt   # no pretraining
#   bash recipes/xlsr/run.sh --corpus /data/xlsr --langs "de fr es" --shard true        # pretrain from shards
#   bash recipes/xlsr/run.sh --corpus /data/xlsr --langs "en de fr" --pretrain-config tiny --finetune-config tiny \
#     --pretrain-updates 5 --finetune-updates 5 --threads 1                               # toy scale (CI)
#
# Stages (rough times at full scale; XLSR-53 is a LARGE pre-LN model pretrained on 56k hours, 250k updates):
#   1 manifests per language; Common Voice MP3 (48 kHz) -> 16 kHz FLAC once (~1 h per 1,000 h with --nj 8)   CPU
#   2 multilingual pretraining (--pretrain-config xlsr; days to weeks on 64+ GPUs, which is why most users
#     pass --init xlsr_53_56k.pt or an XLS-R checkpoint and skip it: the import takes seconds)                GPU
#     With --shard true each language's training audio is first written as WebDataset tar shards (w2v2 shard)
#     and pretraining streams them, alpha-sampling shards per language                                    CPU+GPU
#   3 CTC fine-tuning per language (xlsr_cv: 20k updates of 4 GPUs x 5 accumulated batches; hours per language) GPU
#   4 greedy decoding of each language's test set (minutes per language on a GPU)                            GPU
#   5 scoring per language and the CER/WER table across languages (seconds)                                   CPU
# Several GPUs: --ngpu 8 launches training with torchrun; several nodes: --launcher "torchrun --nnodes N
# --node-rank R --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 -m w2v2cli" on every node (with
# --shard true, write the shards once first: --stage 2 --stop-stage 2 --pretrain-updates 1 on one node).
# A finished step is skipped on re-run (markers in $dir/.done); --stage N --stop-stage N runs stage N again.
# The recipe runs in its own folder (as Kaldi's): relative paths in options are relative to it (--dir exp = here).
set -euo pipefail
cd "$(dirname "$0")"
. ../utils/log.sh
. ../utils/interrupt.sh  # Ctrl-C / SIGTERM: the running stage saves, the recipe exits 130 / 143

stage=1                   # first stage to run
stop_stage=100            # last stage to run
corpus=/data/xlsr         # folder with Common Voice <lang>/ and MLS mls_<language>/ folders (see header)
langs="de fr es"          # languages; LANG:cv or LANG:mls chooses the corpus of one language
corpus_kind=auto          # auto | cv | mls: the corpus of languages written without :cv / :mls
dir=exp                   # output directory
init=                     # imported XLSR-53 / XLS-R checkpoint (fairseq .pt, transformers dir, w2v2 dir)
pretrain_config=xlsr      # xlsr | large | base | tiny | FILE.yaml
pretrain_updates=         # pretraining updates (empty: the preset's)
pretrain_opts=            # more `w2v2 pretrain` options, e.g. "--set optim.update_freq=4"
alpha=0.5                 # language sampling exponent (XLSR: 0.5)
shard=false               # true: pretrain from WebDataset tar shards of each language's training audio (w2v2 shard)
shard_minutes=30          # --shard true: minutes of audio per shard
finetune_config=xlsr_cv   # xlsr_cv | large_10h | tiny | FILE.yaml
finetune_updates=         # fine-tuning updates (empty: the preset's)
finetune_opts=            # more `w2v2 finetune` options
vocab=letters             # letters | spm for every language, then LANG:letters / LANG:spm exceptions
vocab_size=256            # SentencePiece pieces (languages with spm), blank included
ngpu=1                    # GPUs per node: more than 1 launches training with torchrun --nproc-per-node N
launcher=                 # training launcher (default: w2v2, or torchrun when --ngpu > 1); see the header
threads=                  # CPU threads per process (empty: one per core)
nj=8                      # parallel jobs for conversion and manifests
. ../utils/parse_options.sh

case $shard in true|false) ;; *) echo "run.sh: --shard must be true or false, got '$shard'" >&2; exit 1 ;; esac
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
. ../utils/stages.sh
data=$dir/data
. ../utils/train_options.sh  # thread_opt, launch, pretrain_extra, finetune_extra
# one unit per language: "TAG KIND LANG EXT FOLDER" (TAG = cv_de, mls_de, ...)
read -ra lang_specs <<< "$langs"
units=$(python3 local/langs.py "$corpus" "$corpus_kind" "${lang_specs[@]}")
tags=$(cut -d' ' -f1 <<< "$units")
pretrained=$dir/pretrain
[ -n "$init" ] && pretrained=$dir/init
# the vocabulary of a language: its LANG:KIND entry in --vocab, else the word without a colon (default letters)
vocab_of() {
  local v all=letters own=
  for v in $vocab; do
    case $v in *:*) if [ "${v%%:*}" = "$1" ]; then own=${v#*:}; fi ;; *) all=$v ;; esac
  done
  v=${own:-$all}
  case $v in letters|spm) echo "$v" ;;
    *) echo "run.sh: --vocab: '$v' for $1 is not letters or spm" >&2; return 1 ;; esac
}

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  while read -r tag kind lang ext folder; do
    todo 1 "$tag" || continue
    log "Stage 1: $tag manifests from $folder ($ext -> 16 kHz FLAC where needed; $lang text normalisation)"
    corpus_opt=commonvoice
    [ "$kind" = mls ] && corpus_opt=mls
    w2v2 manifest "$folder" --dest "$data/$tag" --corpus "$corpus_opt" --ext "$ext" --lang "$lang" \
      --resample-to 16000 --dict-all-splits --jobs "$nj" < /dev/null
    mark_done 1 "$tag"
  done <<< "$units"
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ] && todo 2; then
  if [ -n "$init" ]; then
    log "Stage 2: no pretraining; importing --init $init into $pretrained"
    if [ -f "$init" ]; then
      w2v2 import fairseq "$init" "$pretrained"
    elif [ -f "$init/config.json" ]; then
      w2v2 import hf "$init" "$pretrained"
    else
      w2v2 info "$init" >/dev/null  # our own checkpoint: checked, then used as it is
      ln -sfn "$(cd "$init" && pwd)" "$pretrained"
    fi
  else
    log "Stage 2: multilingual pretraining ($pretrain_config) on: $(tr '\n' ' ' <<< "$tags")(alpha=$alpha)"
    manifests=() valid=()
    for tag in $tags; do
      train=$data/$tag/train.tsv
      if [ "$shard" = true ]; then  # a no-op when the shards are complete
        log "Stage 2: WebDataset shards of $tag's training audio ($shard_minutes min each) in $data/$tag/train.shards"
        w2v2 shard "$train" --out "$data/$tag/train.shards" --shard-minutes "$shard_minutes" --jobs "$nj" \
          --no-progress < /dev/null
        train=$data/$tag/train.shards
      fi
      manifests+=("$train")
      valid+=(--valid "$data/$tag/dev.tsv")
    done
    "${launch[@]}" pretrain "${manifests[@]}" "${valid[@]}" --config "$pretrain_config" --out "$pretrained" \
      --set "data.sampling_alpha=$alpha" --resume auto "${thread_opt[@]}" "${pretrain_extra[@]}"
  fi
  mark_done 2
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  init_ckpt=$pretrained
  [ -z "$init" ] && init_ckpt=$pretrained/checkpoint_last
  while read -r tag _ lang _; do
    todo 3 "$tag" || continue
    v=$(vocab_of "$lang")
    vocab_opt=(--vocab "$v")
    [ "$v" = spm ] && vocab_opt+=(--vocab-size "$vocab_size")
    log "Stage 3: CTC fine-tuning for $tag ($finetune_config, $v vocabulary)"
    "${launch[@]}" finetune "$data/$tag/train.tsv" --valid "$data/$tag/dev.tsv" --init "$init_ckpt" \
      --config "$finetune_config" "${vocab_opt[@]}" --out "$dir/finetune_$tag" --resume auto \
      "${thread_opt[@]}" "${finetune_extra[@]}" < /dev/null
    mark_done 3 "$tag"
  done <<< "$units"
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  for tag in $tags; do
    todo 4 "$tag" || continue
    log "Stage 4: decode $tag test (greedy)"
    w2v2 decode "$dir/finetune_$tag/checkpoint_best" "$data/$tag/test.tsv" --out "$dir/decode/$tag/viterbi" \
      --no-progress "${thread_opt[@]}"
    mark_done 4 "$tag"
  done
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ] && todo 5; then
  for tag in $tags; do
    log "Stage 5: score $tag"
    out=$dir/decode/$tag/viterbi
    w2v2 score "$out/ref.trn" "$out/hyp.trn" --cer --report "$out/report" > "$out/score.txt"
  done
  python3 ../utils/results_table.py "$dir/decode" --mean > "$dir/results.md.tmp"
  mv "$dir/results.md.tmp" "$dir/results.md"
  cat "$dir/results.md"
  mark_done 5
fi
log "Done. Results: $dir/results.md"
