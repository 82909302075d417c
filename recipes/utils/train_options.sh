#!/usr/bin/env bash
# The training command and its extra options, shared by the recipes. Source it after parse_options.sh; it reads
# $threads, $launcher, $ngpu, $pretrain_opts, $finetune_opts, $pretrain_updates, $finetune_updates and sets:
#   thread_opt      (--threads N, or nothing)
#   launch          (the --launcher words, torchrun with $ngpu processes, or plain w2v2)
#   pretrain_extra  ($pretrain_opts split into words, + --max-updates $pretrain_updates when given)
#   finetune_extra  (the same for fine-tuning)
# Its inputs are set and its outputs used by the recipe that sources it, which shellcheck cannot see from here:
# shellcheck disable=SC2034,SC2154
thread_opt=()
[ -n "$threads" ] && thread_opt=(--threads "$threads")
if [ -n "$launcher" ]; then
  read -ra launch <<< "$launcher"
elif [ "$ngpu" -gt 1 ]; then
  launch=(torchrun --nproc-per-node "$ngpu" -m w2v2cli)
else
  launch=(w2v2)
fi
read -ra pretrain_extra <<< "$pretrain_opts"
read -ra finetune_extra <<< "$finetune_opts"
[ -n "$pretrain_updates" ] && pretrain_extra+=(--max-updates "$pretrain_updates")
[ -n "$finetune_updates" ] && finetune_extra+=(--max-updates "$finetune_updates")
true  # a last test that is false must not fail the sourcing recipe under set -e
