# Two commands from a fresh clone: `make serve` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: serve test lint bench bench-choices bench-profile install clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,bench]'
	./scripts/ensure-promtool.sh $(BIN)
	./scripts/ensure-chromium.sh
	touch $(STAMP)

# The tests also cover the optional ML backends (embedders, transformer and Presidio guards).
$(TEST_STAMP): $(STAMP)
	./scripts/ensure-ml-extras.sh $(BIN)
	touch $(TEST_STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/opsgate serve

test: $(TEST_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

bench: $(STAMP)
	$(BIN)/python -m bench

bench-choices: $(STAMP)
	$(BIN)/python -m bench choices

bench-profile: $(STAMP)
	$(BIN)/python -m bench profile

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
