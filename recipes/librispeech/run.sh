#!/usr/bin/env bash
# wav2vec 2.0 on LibriSpeech (Baevski et al. 2020): pretraining on the LibriSpeech training audio, CTC fine-tuning
# on Libri-light's low-resource splits (10 min / 1 h / 10 h) or LibriSpeech subsets (100 h / 960 h), 4-gram KenLM
# decoding of the dev/test sets, scoring and one results table (RESULTS.md has the paper's figures).
#
# Corpus (--corpus), as unpacked from the official archives (stage 0 downloads what is missing):
#   $corpus/LibriSpeech/{train-clean-100,train-clean-360,train-other-500,dev-clean,dev-other,test-clean,test-other}
#   $corpus/librispeech_finetuning/{1h/{0..5}/{clean,other},9h/{clean,other}}   (Libri-light, for train-10m/1h/10h)
# Any subset may be missing: pretraining uses the training subsets present, validation the dev sets present,
# decoding every dev/test set present (in the paper's order). LM text: LibriSpeech's librispeech-lm-norm.txt
# (openslr.org/resources/11) at --lm-text, else the training transcripts.
#
#   bash recipes/librispeech/run.sh --corpus /data/librispeech                        # everything (BASE, 10 h)
#   bash recipes/librispeech/run.sh --corpus /data/ls --download "train-clean-100 dev-clean test-clean"
#   bash recipes/librispeech/run.sh --corpus /data/ls --stage 3 --stop-stage 3        # fine-tuning again
#   bash recipes/librispeech/run.sh --corpus /data/ls --init wav2vec_small.pt --finetune-subsets "train-10m train-1h"
#   bash recipes/librispeech/run.sh --corpus /data/ls --init wav2vec_vox_new.pt --pretrain-config large  # large_*
#   bash recipes/librispeech/run.sh --corpus /data/ls --pretrain-config large --finetune-subsets train-960
#   bash recipes/librispeech/run.sh --corpus /data/ls --shard true --ngpu 8   # pretrain from WebDataset shards
#   bash recipes/librispeech/run.sh --corpus /data/ls --pretrain-config tiny --finetune-config tiny \
#     --pretrain-updates 5 --finetune-updates 5 --beam 10 --threads 1               # toy scale (CI)
#
# Stages (times at full scale, BASE on 8 GPUs unless said):
#   0 download + unpack, resumable, sha256-verified (~60 GB; network-bound, ~1-3 h)                 CPU
#   1 manifests with labels (~20 min with --nj 8)                                                    CPU
#   2 pretraining, BASE 400k updates (paper: 1.6 days on 64 V100; NVIDIA's tuned bf16 recipe: 2 days on
#     8 A100); LARGE 250k updates on 128 GPUs. With --init: import that checkpoint instead (seconds)   GPU
#     With --shard true it first writes the pretraining audio as WebDataset tar shards (w2v2 shard: one
#     sequential read per shard instead of 281k file opens an epoch; a few minutes with --nj 8) and
#     pretrains from them                                                                            CPU+GPU
#   3 CTC fine-tuning per subset: 10m/1h 13k updates (~4-6 h), 10h 20k (~8 h), 100h 80k (~1 day),
#     960h 320k (~3 days, BASE on 8 GPUs)                                                            GPU
#   4 4-gram KenLM + lexicon (~1 h and ~30 GB RAM on librispeech-lm-norm.txt)                       CPU
#   5 decoding: greedy and 4-gram beam 500 per model and dev/test set (~10 min per set on a GPU;
#     the beam search runs on CPU, ~1-2 h per set with beam 500)                                     GPU (+CPU)
#   6 scoring and the results table (seconds)                                                         CPU
# Several GPUs: --ngpu 8 launches training with torchrun (one process per GPU; keep the paper's effective batch
# with --pretrain-opts "--set optim.update_freq=8" for BASE on 8 GPUs). Several nodes: run the recipe on every node
# with --launcher "torchrun --nnodes 4 --node-rank R --nproc-per-node 8 --rdzv-backend c10d
# --rdzv-endpoint HOST:29500 -m w2v2cli" (R = 0..3) and --corpus/--dir on a shared file system; with --shard true,
# write the shards once before starting the nodes (--stage 2 --stop-stage 2 --pretrain-updates 1 on one node, or
# `w2v2 shard $dir/data/pretrain.tsv --out $dir/data/pretrain.shards`): the nodes then find them complete.
# A finished step is skipped on re-run (markers in $dir/.done); --stage N --stop-stage N runs stage N again.
# The recipe runs in its own folder (as Kaldi's): relative paths in options are relative to it (--dir exp = here).
set -euo pipefail
cd "$(dirname "$0")"
. ../utils/log.sh
. ../utils/interrupt.sh  # Ctrl-C / SIGTERM: the running stage saves, the recipe exits 130 / 143

stage=0                    # first stage to run
stop_stage=100             # last stage to run
corpus=/data/librispeech   # directory holding LibriSpeech/ and librispeech_finetuning/ (see header)
download=all               # stage 0: "all" or parts (train-clean-100 ... test-other, librilight); none: skip
mirror=                    # stage 0: base URL to fetch the archives from (default: openslr.org, fbaipublicfiles)
checksums=                 # stage 0: sha256sum-format file overriding the built-in checksums (for a mirror)
lm_text=                   # LibriSpeech LM text (librispeech-lm-norm.txt); empty: the training transcripts
dir=exp                    # output directory (manifests, models, decodes, results)
init=                      # imported checkpoint (fairseq .pt, transformers dir, w2v2 dir): no pretraining
pretrain_config=base       # base | large | xlsr | tiny | FILE.yaml
pretrain_updates=          # pretraining updates (empty: the preset's)
pretrain_opts=             # more `w2v2 pretrain` options, e.g. "--set optim.update_freq=8"
shard=false                # true: pretrain from WebDataset tar shards of the pretraining audio (w2v2 shard)
shard_minutes=30           # --shard true: minutes of audio per shard
finetune_subsets=train-10h # labelled sets to fine-tune on: train-10m train-1h train-10h train-clean-100 train-960
finetune_config=auto       # auto: base_* (large_* after large/xlsr) + 10m|1h|10h|100h|960h by subset; or a preset
finetune_updates=          # fine-tuning updates (empty: the preset's)
finetune_opts=             # more `w2v2 finetune` options, e.g. "--set optim.update_freq=4"
ngpu=1                     # GPUs per node: more than 1 launches training with torchrun --nproc-per-node N
launcher=                  # training launcher (default: w2v2, or torchrun when --ngpu > 1); see the header
threads=                   # CPU threads per process (empty: one per core)
nj=8                       # parallel jobs for manifests
beam=                      # beam size of the 4-gram search (empty: w2v2 decode's default)
lm_weight=                 # LM weight (empty: w2v2 decode's default, fairseq's usual; RESULTS.md)
word_score=                # word insertion score (empty: w2v2 decode's default)
. ../utils/parse_options.sh

case $shard in true|false) ;; *) echo "run.sh: --shard must be true or false, got '$shard'" >&2; exit 1 ;; esac
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
. ../utils/stages.sh
data=$dir/data
src=$corpus/LibriSpeech
. ../utils/train_options.sh  # thread_opt, launch, pretrain_extra, finetune_extra
# the subsets present, in the paper's order (what stage 1 made manifests of)
present() { local s; for s in "$@"; do [ -f "$data/$s.tsv" ] && echo "$s"; done; true; }
train_sets() { present train-clean-100 train-clean-360 train-other-500; }
dev_sets() { present dev-clean dev-other; }
eval_sets() { present dev-clean dev-other test-clean test-other; }
valid_opts() { local d; for d in $(dev_sets); do printf -- '--valid\n%s\n' "$data/$d.tsv"; done; }
pretrained=$dir/pretrain_$(basename "$pretrain_config" .yaml)
[ -n "$init" ] && pretrained=$dir/init

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ] && [ "$download" != none ]; then
  log "Stage 0: download and unpack into $corpus: $download"
  opts=()
  [ -n "$mirror" ] && opts+=(--mirror "$mirror")
  [ -n "$checksums" ] && opts+=(--checksums "$checksums")
  read -ra parts <<< "$download"
  python3 local/download.py "$corpus" "${parts[@]}" "${opts[@]}"
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ] && todo 1; then
  log "Stage 1: manifests with labels for every subset present in $src"
  [ -d "$src" ] || { echo "run.sh: no LibriSpeech at $src (see the header of this script)" >&2; exit 1; }
  # --dict-all-splits: a letter that only dev/test transcripts use still encodes for validation
  w2v2 manifest "$src" --dest "$data" --corpus librispeech --dict-all-splits --jobs "$nj"
  if [ -d "$corpus/librispeech_finetuning" ]; then
    log "Stage 1: Libri-light limited-supervision splits -> train-10m, train-1h, train-10h"
    w2v2 manifest "$corpus/librispeech_finetuning" --dest "$data/librilight" --corpus librilight --jobs "$nj"
    for s in train-10m train-1h train-10h; do  # labels beside their manifest; the letters of LibriSpeech
      for ext in tsv wrd ltr; do ln -sf "librilight/$s.$ext" "$data/$s.$ext"; done
    done
  fi
  mapfile -t trains < <(train_sets)
  [ ${#trains[@]} -gt 0 ] || { echo "run.sh: no training subset (train-*) in $src" >&2; exit 1; }
  [ -n "$(dev_sets)" ] || { echo "run.sh: no dev subset (dev-clean, dev-other) in $src" >&2; exit 1; }
  # the pretraining audio: every training subset present (960 h when all three are there)
  python3 ../utils/combine_manifests.py "$data/pretrain" "${trains[@]/#/$data/}"
  if [ ${#trains[@]} -eq 3 ]; then
    python3 ../utils/combine_manifests.py "$data/train-960" "${trains[@]/#/$data/}"
  fi
  mark_done 1
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
    pretrain_data=$data/pretrain.tsv
    if [ "$shard" = true ]; then  # a no-op when the shards are complete
      log "Stage 2: WebDataset shards of the pretraining audio ($shard_minutes min each) in $data/pretrain.shards"
      w2v2 shard "$pretrain_data" --out "$data/pretrain.shards" --shard-minutes "$shard_minutes" --jobs "$nj" \
        --no-progress
      pretrain_data=$data/pretrain.shards
    fi
    log "Stage 2: self-supervised pretraining ($pretrain_config) on: $(train_sets | tr '\n' ' ')"
    mapfile -t valid < <(valid_opts)
    "${launch[@]}" pretrain "$pretrain_data" "${valid[@]}" --config "$pretrain_config" \
      --out "$pretrained" --resume auto "${thread_opt[@]}" "${pretrain_extra[@]}"
  fi
  mark_done 2
fi

# the fine-tuning preset for a subset: --finetune-config, or (auto) the paper's for its amount of labels
ft_config() {
  [ "$finetune_config" != auto ] && { echo "$finetune_config"; return; }
  local family=base
  case $pretrain_config in large|xlsr) family=large ;; esac
  case $1 in
    train-10m) echo "${family}_10m" ;;  train-1h) echo "${family}_1h" ;;  train-10h) echo "${family}_10h" ;;
    train-clean-100) echo "${family}_100h" ;;  train-960) echo "${family}_960h" ;;
    *) echo "run.sh: no preset for fine-tuning subset '$1'; pass --finetune-config" >&2; return 1 ;;
  esac
}
ckpt_of() { echo "$dir/finetune_$1/checkpoint_best"; }

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  mapfile -t valid < <(valid_opts)
  for sub in $finetune_subsets; do
    todo 3 "$sub" || continue
    [ -f "$data/$sub.tsv" ] || { echo "run.sh: no manifest $data/$sub.tsv (Libri-light's splits need" \
      "$corpus/librispeech_finetuning; added after stage 1 ran: --stage 1 --stop-stage 1)" >&2; exit 1; }
    cfg=$(ft_config "$sub")
    log "Stage 3: CTC fine-tuning on $sub ($cfg) from $pretrained"
    init_ckpt=$pretrained
    [ -z "$init" ] && init_ckpt=$pretrained/checkpoint_last
    "${launch[@]}" finetune "$data/$sub.tsv" "${valid[@]}" --init "$init_ckpt" --config "$cfg" \
      --out "$dir/finetune_$sub" --resume auto "${thread_opt[@]}" "${finetune_extra[@]}"
    mark_done 3 "$sub"
  done
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ] && todo 4; then
  log "Stage 4: 4-gram KenLM and lexicon"
  [ -x ../../tools/kenlm/bin/lmplz ] || command -v lmplz >/dev/null || bash ../../tools/install_kenlm.sh
  text=$lm_text
  if [ -z "$text" ]; then
    text=$dir/lm_text.txt
    for s in $(train_sets); do cat "$data/$s.wrd"; done > "$text.tmp"
    mv "$text.tmp" "$text"
  fi
  w2v2 lm build "$text" --order 4 --out "$dir/lm_4gram"
  mark_done 4
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  beam_opts=()  # only the beam search options given: the others are w2v2 decode's defaults
  [ -n "$beam" ] && beam_opts+=(--beam "$beam")
  [ -n "$lm_weight" ] && beam_opts+=(--lm-weight "$lm_weight")
  [ -n "$word_score" ] && beam_opts+=(--word-score "$word_score")
  for sub in $finetune_subsets; do
    for test in $(eval_sets); do
      todo 5 "$sub.$test" || continue
      log "Stage 5: decode $test with the $sub model (greedy, then the 4-gram beam search)"
      w2v2 decode "$(ckpt_of "$sub")" "$data/$test.tsv" --out "$dir/decode/$sub/$test/viterbi" --no-progress \
        "${thread_opt[@]}"
      w2v2 decode "$(ckpt_of "$sub")" "$data/$test.tsv" --out "$dir/decode/$sub/$test/4gram" --no-progress \
        --decoder beam --lexicon "$dir/lm_4gram/lexicon.txt" --lm "$dir/lm_4gram/lm.bin" \
        "${beam_opts[@]}" "${thread_opt[@]}"
      mark_done 5 "$sub.$test"
    done
  done
fi

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ] && todo 6; then
  for sub in $finetune_subsets; do
    for test in $(eval_sets); do
      for d in viterbi 4gram; do
        log "Stage 6: score $sub/$test/$d"
        out=$dir/decode/$sub/$test/$d
        w2v2 score "$out/ref.trn" "$out/hyp.trn" --report "$out/report" > "$out/score.txt"
      done
    done
  done
  python3 ../utils/results_table.py "$dir/decode" > "$dir/results.md.tmp"
  mv "$dir/results.md.tmp" "$dir/results.md"
  cat "$dir/results.md"
  mark_done 6
fi
log "Done. Results: $dir/results.md"
