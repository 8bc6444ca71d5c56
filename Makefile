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

.PHONY: run check test test-slow lint format bench bench-load mutation clean

run: $(RUNTIME_STAMP)
	$(BIN)/python bot.py

check: $(RUNTIME_STAMP)
	$(BIN)/python bot.py check

# The whole suite, and every branch of the breaker taken (pytest-cov, [tool.coverage]).
BREAKER_COVERAGE := --cov=edge_voice.core.breaker --cov-branch --cov-fail-under=100

test: $(DEV_STAMP)
	$(BIN)/python -m pytest -q -n 3 $(BREAKER_COVERAGE)

# The tests marked slow (left out of `make test`): pip install of the wheel with its
# pinned dependencies from the package registry into a fresh virtualenv.
test-slow: $(DEV_STAMP)
	$(BIN)/python -m pytest -q -m slow

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
BENCHES := breaker_overhead outage first_audio voice_latency settings_writes text_cleanup e2e_latency shards opus_levers
bench: $(DEV_STAMP) $(PEERS_STAMP)
	@missed=""; for name in $(BENCHES); do \
		echo "== bench/$$name.py"; \
		$(BIN)/python bench/$$name.py || missed="$$missed $$name"; \
	done; \
	if [ -n "$$missed" ]; then echo "benchmark targets missed:$$missed"; exit 1; fi

# The concurrent-voices ladder (bench/voice_load.py): minutes per path, so not in `make bench`.
# It exits 1 when the last path named misses its 150-stream target.
LOAD_PATHS ?= main,mp3,webm-shared
bench-load: $(DEV_STAMP)
	$(BIN)/python bench/voice_load.py --paths $(LOAD_PATHS)

# Mutation testing of core/breaker/ with the breaker's tests (not part of `make test`).
# mutmut names each mutant after its file's path and puts mutants/src first on
# sys.path, so it runs in $(MUTATION), a copy where the package sits at
# src/edge_voice: the tests then import the mutated edge_voice.core.breaker, not
# this checkout (which the editable install would give them).
MUTATION := .mutation

mutation: $(DEV_STAMP)
	rm -rf $(MUTATION)
	mkdir -p $(MUTATION)/src/edge_voice
	cp -r core cogs bot.py config.toml $(MUTATION)/src/edge_voice/
	cp -r tests pyproject.toml $(MUTATION)/
	find $(MUTATION) -name __pycache__ -prune -exec rm -rf {} +
	cd $(MUTATION) && BREAKER_MODEL_EXAMPLES=60 ../$(BIN)/mutmut run --max-children 2 > mutmut-run.log 2>&1 \
		|| { tail -40 mutmut-run.log; exit 1; }
	cd $(MUTATION) && ../$(BIN)/python ../tests/breaker_mutation_report.py

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
	rm -rf $(VENV) $(PEERS) $(MUTATION) mutants .typecheck .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage
