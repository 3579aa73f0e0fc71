# chinwag: every target sets up what it needs. `make serve` runs the server; `make test` tests it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXAMPLE_PLUGIN := examples/weather_tool

.PHONY: serve test test-fast browser bench bench-quick lint typecheck schema clean

# The venv is rebuilt when the project's or the example plugin's packaging changes.
$(STAMP): pyproject.toml $(wildcard $(EXAMPLE_PLUGIN)/pyproject.toml)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	if [ -f $(EXAMPLE_PLUGIN)/pyproject.toml ]; then $(BIN)/pip install --quiet -e $(EXAMPLE_PLUGIN); fi
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/chinwag serve $(ARGS)

# Everything, browser tests included: Chromium comes from Debian's packages when missing.
test: $(STAMP) browser
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The quick loop while working: no fault-injection, load or browser suites.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not browser" $(PYTEST_ARGS)

browser:
	@if [ -f scripts/ensure-browser.sh ]; then bash scripts/ensure-browser.sh; fi

bench: $(STAMP)
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

lint: $(STAMP)
	$(BIN)/ruff check server tests

typecheck: $(STAMP)
	$(BIN)/mypy

schema: $(STAMP)
	$(BIN)/chinwag schema

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache
