# agentdeck: `make run` starts everything, `make test` runs the whole suite.
# Needs only Python 3.11+ and make; the first call creates .venv and installs the project.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint format install clean-var

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "agentdeck needs Python 3.11+; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## Start API + WebSockets (daphne), a django-q2 worker and the admin on 127.0.0.1:$${PORT:-8000}.
run: $(STAMP)
	$(BIN)/python manage.py serve

## The whole suite against real PostgreSQL + pgvector, with a coverage summary.
test: $(STAMP)
	$(BIN)/python -m pytest --cov --cov-report=term

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Remove the embedded database and other local state (asks no questions).
clean-var:
	rm -rf var
