# Every target sets itself up: a .venv with the pinned requirements, made on first use
# and refreshed when a requirements file changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
PEERS := .bench-peers
PEERS_STAMP := $(PEERS)/.installed
TYPECHECK_LINK := .typecheck/edge_voice

.PHONY: run check test lint format bench clean

run: $(RUNTIME_STAMP)
	$(BIN)/python bot.py

check: $(RUNTIME_STAMP)
	$(BIN)/python bot.py check

test: $(DEV_STAMP)
	$(BIN)/python -m pytest -q

# mypy cannot follow setuptools' editable-install finder, so it reads the package
# through a link that names the checkout edge_voice (see [tool.mypy] in pyproject.toml).
lint: $(DEV_STAMP) $(TYPECHECK_LINK)
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
	$(BIN)/python -m mypy

$(TYPECHECK_LINK):
	mkdir -p $(dir $@)
	ln -sfn .. $@

format: $(DEV_STAMP)
	$(BIN)/python -m ruff format .
	$(BIN)/python -m ruff check --fix .

# Each benchmark exits 1 when it misses a target it prints. All of them run; then
# `make bench` fails, naming the ones that missed.
BENCHES := breaker_overhead outage first_audio voice_latency e2e_latency
bench: $(DEV_STAMP) $(PEERS_STAMP)
	@missed=""; for name in $(BENCHES); do \
		echo "== bench/$$name.py"; \
		$(BIN)/python bench/$$name.py || missed="$$missed $$name"; \
	done; \
	if [ -n "$$missed" ]; then echo "benchmark targets missed:$$missed"; exit 1; fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The pinned requirements, then this project itself, editable, as the package edge_voice.
$(RUNTIME_STAMP): requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(RUNTIME_STAMP) $@

# Other breakers, for bench/breaker_overhead.py only: kept out of the bot's environment.
$(PEERS_STAMP): bench/requirements-peers.txt | $(DEV_STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --target $(PEERS) -r bench/requirements-peers.txt
	touch $@

clean:
	rm -rf $(VENV) $(PEERS) .typecheck .pytest_cache .mypy_cache .ruff_cache .hypothesis
