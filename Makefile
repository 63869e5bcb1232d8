# One command set for people and CI alike.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup lock test test-fast lint format typecheck check demo sandbox bench clean

## setup: the virtualenv, every dependency at the version and hash the lock gives
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/lock.txt
	./scripts/ensure-system.sh
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes -r requirements/lock.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

## lock: pin every dependency again, with hashes, for Python 3.11 on Linux x86_64;
## pins that still fit pyproject.toml stay (make lock LOCK_UPGRADE=--upgrade: the newest)
# uv rather than pip-tools: `uv pip compile` resolves for the Python version and
# platform it is told (--python-version, --python-platform), whatever machine runs it,
# where pip-compile resolves for the interpreter it runs on; it writes pip's own
# requirements format with every file's hash, so installing needs nothing but pip.
# lock.txt holds the project with its dev extra (make setup, CI); runtime.txt the
# project alone at the same versions (the Dockerfile).
UV_VERSION := 0.13.9
LOCK_UPGRADE ?=
LOCK_FLAGS := --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	--generate-hashes --custom-compile-command 'make lock' --quiet

lock: $(VENV)/bin/uv
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev $(LOCK_FLAGS) \
		$(LOCK_UPGRADE) -o requirements/lock.txt
	$(VENV)/bin/uv pip compile pyproject.toml -c requirements/lock.txt $(LOCK_FLAGS) \
		-o requirements/runtime.txt

$(VENV)/bin/uv:
	python3 -m venv $(VENV)
	$(PY) -m pip install -q uv==$(UV_VERSION)

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
