# The two commands the README promises; .ci/run calls `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo-run

.PHONY: setup demo test test-fast lint clean

$(BIN)/funnelops: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,gcp,spark]'
	touch $(BIN)/funnelops

setup: $(BIN)/funnelops

demo: setup
	$(BIN)/funnelops demo --dir $(DEMO_DIR)

# ruff (style and bugs), import contracts (the layering of docs/architecture.md), mypy (types)
lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy

test: setup lint
	$(BIN)/pytest -n 2 --timeout=900

test-fast: setup
	$(BIN)/pytest -n 2 tests/unit

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
