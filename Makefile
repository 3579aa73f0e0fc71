# chinwag: every target sets up what it needs. `make serve` runs the server; `make test` tests it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXAMPLE_PLUGIN := examples/weather_tool
# Serving has a venv of its own with chinwag's runtime dependencies only: no test or dev
# tools, and no example plugin (its tools would be offered to every user).
SERVE_VENV  := .venv-serve
SERVE_STAMP := $(SERVE_VENV)/.installed
# `make serve PORT=9000` (and HOST=...): shorthands for `ARGS="--port 9000"`.
PORT ?=
HOST ?=

.PHONY: serve test test-fast browser services node-tools mcp-conformance bench bench-peers bench-quick lint typecheck schema clean

# The development and test venv: chinwag with its dev extras, and the example plugin that
# the tests exercise. Rebuilt when the project's or the example plugin's packaging changes.
$(STAMP): pyproject.toml $(wildcard $(EXAMPLE_PLUGIN)/pyproject.toml)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	if [ -f $(EXAMPLE_PLUGIN)/pyproject.toml ]; then $(BIN)/pip install --quiet -e $(EXAMPLE_PLUGIN); fi
	touch $(STAMP)

$(SERVE_STAMP): pyproject.toml
	test -x $(SERVE_VENV)/bin/python || $(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/pip install --quiet --upgrade pip
	$(SERVE_VENV)/bin/pip install --quiet -e .
	touch $(SERVE_STAMP)

serve: $(SERVE_STAMP)
	$(SERVE_VENV)/bin/chinwag serve $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT)) $(ARGS)

# Everything: lint and types first (pinned tools, so a fresh clone sees what CI sees), then
# every test, browser tests included (Chromium comes from Debian's packages when missing).
test: $(STAMP) browser services node-tools lint typecheck
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The quick loop while working: no fault-injection, load or browser suites.
test-fast: $(STAMP) node-tools
	$(BIN)/python -m pytest -q -m "not slow and not browser" $(PYTEST_ARGS)

browser:
	@if [ -f scripts/ensure-browser.sh ]; then bash scripts/ensure-browser.sh; fi

# npm-distributed MCP servers for tests/mcp, into .cache/node-tools.
node-tools:
	bash scripts/ensure-node-tools.sh

# The official MCP conformance suite against chinwag's MCP client (also part of `make test`).
mcp-conformance: $(STAMP) node-tools
	$(BIN)/python -m pytest -q tests/mcp/test_conformance.py

# PostgreSQL (and Redis) from Debian's packages when missing; the tests start their own.
services:
	sh scripts/ensure-services.sh

bench: $(STAMP)
	$(BIN)/python -m bench

# LiteLLM's proxy, in a venv of its own, measured beside chinwag on the same fake upstream.
PEERS_VENV := bench/.venv-peers
LITELLM_VERSION := 1.108.7
$(PEERS_VENV)/.installed:
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install --quiet 'litellm[proxy]==$(LITELLM_VERSION)'
	touch $(PEERS_VENV)/.installed

bench-peers: $(STAMP) $(PEERS_VENV)/.installed
	$(BIN)/python -m bench --only peers

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

lint: $(STAMP)
	$(BIN)/ruff check server chinwag_client tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy

schema: $(STAMP)
	$(BIN)/chinwag schema

clean:
	rm -rf $(VENV) $(SERVE_VENV) .pytest_cache .mypy_cache
