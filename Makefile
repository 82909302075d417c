# Two entry points for a fresh machine: `make demo` (the whole pipeline on synthetic speech)
# and `make test` (the test suite). Both install what they need first.
PYTHON ?= python3

.PHONY: install demo test bench

install:
	bash tools/install_system_deps.sh
	bash tools/install_kenlm.sh
	$(PYTHON) -m pip install -q -e ".[test]"

demo: install
	bash recipes/demo/run.sh

test: install
	$(PYTHON) -m pytest -q tests

bench: install
	$(PYTHON) bench/run_all.py --quick
