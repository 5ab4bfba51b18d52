# make run   - create .venv, install, migrate, seed the demo clinic, serve on :8000
# make test  - install the dev tools, run the linters and the whole test suite
# make lint  - the linters alone
# make test-rasa - the Rasa action server's tests alone, in .venv-rasa
#
# Everything runs through .venv/bin/...; no activated shell needed.

SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
VENV_RASA := .venv-rasa
HOST ?= 127.0.0.1
PORT ?= 8000

# python3.11 if there, else the first python3.x that is 3.11 or newer.
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3; do \
	if command -v $$p >/dev/null 2>&1 && \
	   $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then \
	   echo $$p; break; fi; done)

.PHONY: run test test-rasa lint serve clean-venv

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "make: need Python 3.11 or newer (python3.11 or python3)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

# uv installs in seconds what pip takes a minute or more for (CI builds both
# environments from scratch on every run); pip only installs uv itself.
# --compile-bytecode as pip does: where PYTHONDONTWRITEBYTECODE is set (CI),
# every process and test subprocess would otherwise compile its imports anew.
$(BIN)/uv: | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check 'uv>=0.4'

# Stamps: reinstall only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/uv
	VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/uv pip install --quiet --compile-bytecode -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/uv
	VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/uv pip install --quiet --compile-bytecode -e '.[dev]'
	touch $@ $(VENV)/.installed

# The Rasa action server's own environment: rasa-sdk pins its own web stack
# (pydantic among it), which must not change the service's.
$(VENV_RASA)/.installed: pyproject.toml | $(BIN)/uv
	$(BIN)/uv venv --quiet --allow-existing --python $(PYTHON) $(VENV_RASA)
	VIRTUAL_ENV=$(abspath $(VENV_RASA)) $(BIN)/uv pip install --quiet --compile-bytecode -e '.[rasa]' \
		'pytest>=8' 'pytest-timeout>=2.3'
	touch $@

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
# Then tests/rasa, in .venv-rasa, on a PostgreSQL database of its own (test_rasa).
TEST_WORKERS ?= 3
# The system tests run at 0.3 of issue 8's volumes (tests/system/cluster.py);
# SYSTEM_TEST_SCALE=1 make test runs the full numbers (minutes more).
export SYSTEM_TEST_SCALE ?= 0.3
# The project's own modules are compiled first: with PYTHONDONTWRITEBYTECODE set
# (CI), each of the suite's many subprocesses would compile them again.
test: lint $(VENV_RASA)/.installed
	$(BIN)/python -m compileall -q -j 0 core flows channels web bots tests bench
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=25
	TELEMED_TEST_DB_SUFFIX=rasa $(VENV_RASA)/bin/pytest -q -p no:cacheprovider tests/rasa

# The Rasa action server alone (tests/rasa), in its own environment.
test-rasa: $(VENV_RASA)/.installed
	TELEMED_TEST_DB_SUFFIX=rasa $(VENV_RASA)/bin/pytest -q -p no:cacheprovider tests/rasa

clean-venv:
	rm -rf $(VENV) $(VENV_RASA)
