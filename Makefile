# Two entry points for a fresh machine: `make demo` (the whole pipeline on synthetic speech)
# and `make test` (the test suite). Both install what they need first.
PYTHON ?= python3

.PHONY: install demo demo-lowres test bench

install:
	bash tools/install_system_deps.sh
	bash tools/install_kenlm.sh
	$(PYTHON) -m pip install -q -e ".[test]"

demo: install
	bash recipes/demo/run.sh

# The low-resource setting: pretraining (k-means targets) on all 4.5 h of audio, then CTC on the labels of 8 voices
# (up to 15 minutes; they hold 8.2), 750 updates once from the pretrained model and once from scratch, the output
# layer starting at the label prior, the checkpoint picked by dev CER; side by side in one table.
demo-lowres: install
	bash recipes/demo/run.sh --dir ../../exp/demo-lowres --config tiny_fbank_km --labeled-speakers 8 \
	  --labeled-minutes 15 --scratch true --pretrain-minutes 10 --finetune-minutes "" --finetune-updates 750 \
	  --finetune-mask-prob 0.3 --finetune-set "task.output_bias=prior checkpoint.best_metric=cer"

test: install
	$(PYTHON) -m pytest -q tests

bench: install
	$(PYTHON) bench/run_all.py --quick
