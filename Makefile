# The two commands the README promises; .ci/run calls `make test`.
#
# `make demo` installs only what the demo needs (`pip install -e .`, ~150 MB); `make test` adds the
# test, gcp and spark extras (`.[dev,gcp,spark]`, ~870 MB, PySpark alone ~490 MB) into the SAME venv.
# Each install leaves a stamp file in the venv, so `make demo` then `make test` upgrades the venv once,
# and `make test` then `make demo` installs nothing more (the full install contains the demo's).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo-run
# what `make test` passes to pytest (e.g. `make test PYTEST_ARGS="tests/unit -x"`)
PYTEST_ARGS ?= -n 2 --timeout=900
PIP := PIP_DISABLE_PIP_VERSION_CHECK=1 $(BIN)/python -m pip

DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-test

.PHONY: setup setup-demo setup-test demo test test-fast lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e .
	touch $@

# the full install includes the demo's: touch its stamp too, so a later `make demo` installs nothing
$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[dev,gcp,spark]'
	touch $@ $(DEMO_STAMP)

setup setup-demo: $(DEMO_STAMP)

setup-test: $(TEST_STAMP)

demo: setup-demo
	$(BIN)/funnelops demo --dir $(DEMO_DIR)

# ruff (style and bugs), import contracts (the layering of docs/architecture.md), mypy (types)
lint: setup-test
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy

test: setup-test lint
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: setup-test
	$(BIN)/pytest -n 2 tests/unit

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
