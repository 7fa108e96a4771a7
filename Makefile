# Two commands: `make run` and `make test`. Both set up .venv from the pinned requirements first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
# Unset, the portal runs as deployed (DEBUG=false) and refuses local defaults: these targets ask for local mode.
LOCAL := DEBUG=true

.PHONY: setup run demo test bench lint screenshots

$(VENV)/.installed: requirements/base.txt requirements/dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	@touch $@

setup: $(VENV)/.installed

run: setup
	$(LOCAL) $(BIN)/python manage.py migrate --noinput
	$(LOCAL) $(BIN)/python manage.py portal_setup_demo
	$(LOCAL) PORT=$(PORT) $(BIN)/python manage.py runportal --port $(PORT)

# With make run going in another terminal: post the demo's signed webhooks to it, at http://127.0.0.1:$(PORT)
# (give both the same PORT: make run PORT=8010, then make demo PORT=8010).
demo: setup
	$(LOCAL) PORT=$(PORT) $(BIN)/python manage.py send_demo_webhooks

test: setup
	$(LOCAL) $(BIN)/python manage.py makemigrations --check --dry-run >/dev/null || (echo "Models changed without a migration: run $(LOCAL) $(BIN)/python manage.py makemigrations" && exit 1)
	$(LOCAL) $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python bench/run.py
	$(BIN)/python bench/lateness.py

screenshots: setup
	$(LOCAL) SAVE_SCREENSHOTS=1 $(BIN)/python -m pytest tests/browser

# Style and complexity (ruff), types (mypy), and the layers: nothing imports upward (import-linter).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(LOCAL) $(BIN)/mypy
	$(BIN)/lint-imports --no-logo
