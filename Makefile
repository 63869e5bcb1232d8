# One command set for people and CI alike.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup test test-fast lint format typecheck check demo sandbox bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	./scripts/ensure-system.sh
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

## test: every test, integration included (starts its own Redis, sandbox and workers)
test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

## test-fast: unit tests only
test-fast: setup
	$(PY) -m pytest -m "not integration and not faults and not browser" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: setup
	$(VENV)/bin/mypy

check: lint typecheck test

## demo: a real export end to end (private Redis, the Heeros sandbox, a worker, 300 invoices)
demo: setup
	$(VENV)/bin/heeros-export demo

sandbox: setup
	$(VENV)/bin/heeros-export sandbox --port 8089

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
