# layerlab: every target creates what it needs (venv, npm packages) on first use.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
NPMSTAMP := node_modules/.installed

.PHONY: demo test test-fast bench lint deps clean contracts

deps: $(STAMP) $(NPMSTAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(NPMSTAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

contracts: deps
	$(BIN)/layerlab contracts compile

demo: deps
	$(BIN)/layerlab demo

test: deps
	$(BIN)/pytest -q -p no:cacheprovider --durations=30 tests

test-fast: deps
	$(BIN)/pytest -q -p no:cacheprovider -m "not slow" tests

bench: deps
	$(BIN)/python -m layerlab.bench.l1_transfers
	$(BIN)/python -m layerlab.bench.channels
	$(BIN)/python -m layerlab.bench.consensus
	$(BIN)/python -m layerlab.bench.rollup_codec
	$(BIN)/python -m layerlab.bench.l2
	$(BIN)/python -m layerlab.bench.shards

lint: deps
	$(BIN)/ruff check src tests
	$(BIN)/mypy

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
