# make run   - create .venv, install, migrate, seed the demo clinic, serve on :8000
# make test  - install the dev tools, run the linters and the whole test suite
# make lint  - the linters alone
#
# Everything runs through .venv/bin/...; no activated shell needed.

SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

# python3.11 if there, else the first python3.x that is 3.11 or newer.
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3; do \
	if command -v $$p >/dev/null 2>&1 && \
	   $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then \
	   echo $$p; break; fi; done)

.PHONY: run test lint serve clean-venv

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "make: need Python 3.11 or newer (python3.11 or python3)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Stamps: reinstall only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/telemed db upgrade
	$(BIN)/telemed demo
	@echo
	@echo "In another terminal: .venv/bin/telemed chat --channel sms --from +15555550123"
	@echo "API: http://$(HOST):$(PORT)/docs   health: http://$(HOST):$(PORT)/readyz"
	@echo "Dashboard: .venv/bin/telemed users add --email you@clinic.example --role admin, then http://$(HOST):$(PORT)/login"
	@echo
	$(BIN)/telemed serve --host $(HOST) --port $(PORT)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# pytest exits 5 when it collects no test; make treats that as a failure, as it should.
# Three pytest-xdist workers, each with its own SQLite files and PostgreSQL database
# (tests/conftest.py), whole files per worker; TEST_WORKERS=0 runs it serially.
# The 25 slowest tests are listed at the end: CI must stay under 15 minutes.
TEST_WORKERS ?= 3
test: lint
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=25

clean-venv:
	rm -rf $(VENV)
