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

# System tools the tests use as a reader would: pdftoppm opens the PDF briefing, Debian's
# Chromium (and its driver) renders the dashboard. Installed with apt-get when missing and
# permitted (root); else those checks skip with a note (CI sets WARROOM_REQUIRE_BROWSER=1,
# which turns a missing browser into a failure).
SYSPKGS_CMD := pdftoppm:poppler-utils chromium:chromium chromedriver:chromium-driver
sysdeps:
	@missing=""; for pair in $(SYSPKGS_CMD); do cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      $$missing) >/dev/null 2>&1 || echo "note: could not install$$missing"; \
	  else echo "note: missing$$missing (needs root and apt-get); those checks will skip"; fi; \
	fi

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
	$(BIN)/python benchmarks/serve.py
	$(BIN)/python benchmarks/scale.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
