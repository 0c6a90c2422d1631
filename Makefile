# The two commands a new user needs: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
N      ?= 1000000

.PHONY: setup demo test lint bench eval-detectors clean

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { $(PYTHON) -m pip install --quiet virtualenv && $(PYTHON) -m virtualenv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev,celery]'
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/llmmon demo --home .demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

# Not part of `make test`: prints records/s vs a naive pandas+whylogs baseline and peak RSS.
# BENCH_ARGS: e.g. --skip-baseline, --workers 2.
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python scripts/bench.py --records $(N) $(BENCH_ARGS)

# Not part of `make test`: precision/recall of the PII, jailbreak, refusal and toxicity detectors on
# held-out test splits of public corpora (docs/detectors.md), and texts/s per detector. Needs the
# corpora snapshots (CORPORA=folder of git mirrors, see docs/detectors.md).
CORPORA ?= /work/.mirror
eval-detectors: $(STAMP)
	$(BIN)/python scripts/eval_detectors.py --mirror $(CORPORA)

clean:
	rm -rf .demo .bench .pytest_cache
