# Two commands: `make run` and `make test`. Both set up .venv from the pinned requirements first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: setup run test bench lint screenshots

$(VENV)/.installed: requirements/base.txt requirements/dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	@touch $@

setup: $(VENV)/.installed

run: setup
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py portal_setup_demo
	PORT=$(PORT) $(BIN)/python manage.py runportal --port $(PORT)

test: setup
	$(BIN)/python manage.py makemigrations --check --dry-run >/dev/null || (echo "Models changed without a migration: run $(BIN)/python manage.py makemigrations" && exit 1)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python bench/run.py

screenshots: setup
	SAVE_SCREENSHOTS=1 $(BIN)/python -m pytest tests/browser

# Style and complexity (ruff), types (mypy), and the layers: nothing imports upward (import-linter).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo
