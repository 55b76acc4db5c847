# The two set-up commands: `make run` (the service on embedded defaults, with a demo key) and
# `make test` (the whole suite). Both install into .venv from this checkout's own files.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint bench clean

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The service on embedded defaults (SQLite, a filesystem broker, the provider simulator) unless
# DATABASE_URL / CELERY_BROKER_URL say otherwise.
run: install
	$(BIN)/smsqueue db upgrade
	$(BIN)/smsqueue demo
	$(BIN)/smsqueue dev

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install lint
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .smsqueue .pytest_cache .ruff_cache
