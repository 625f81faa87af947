# The two set-up commands: `make demo` and `make test`. Everything else is below them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test

.PHONY: demo test lint bench clean sysdeps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(STAMP)

demo: $(STAMP)
	$(BIN)/warroom demo

# System tools the tests use as a reader would (pdftoppm opens the PDF briefing); installed
# with apt-get when missing and permitted, else those checks skip with a note.
sysdeps:
	@command -v pdftoppm >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  [ "$$(id -u)" = 0 ] && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq poppler-utils) >/dev/null 2>&1; } || \
	  echo "note: poppler-utils (pdftoppm) not installed; the PDF page check will skip"

test: $(TSTAMP) sysdeps
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

lint: $(TSTAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(TSTAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/estimate.py
	$(BIN)/python benchmarks/forecast.py
	$(BIN)/python benchmarks/brief.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
