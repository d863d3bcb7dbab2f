# Goalkeeper: `make demo` shows it working, `make test` proves it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Test sessions side by side (each file's tests stay together, in one session).
TEST_WORKERS ?= 2

.PHONY: install browser promtool examples demo test lint up worker compose-env compose-up bench screenshots clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed ## Create the virtualenv and install Goalkeeper with its test tools

browser: ## Install headless Chromium and chromedriver for the browser tests, if missing (apt)
	.ci/browser

promtool: ## Install promtool (Debian's prometheus) for the alert rules' unit tests, if missing (apt)
	.ci/promtool

examples: ## Install curl, jq and Node.js for the documented example agents' tests, if missing (apt)
	.ci/examples

demo: install ## Run a sample goal on the embedded stack, end to end, and stop (ARGS=--keep)
	$(PY) starter.py demo $(ARGS)

test: install lint browser promtool examples ## Lint, type-check and run the whole suite against a real Temporal and PostgreSQL
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

up: install ## Run the embedded stack (Temporal + UI on :8233, PostgreSQL, dashboard on :8000) in the foreground
	$(PY) starter.py up

worker: install ## Run a worker against TEMPORAL_ADDRESS and DATABASE_URL
	$(PY) worker.py

compose-env: ## Write .env for docker compose: a random value for every password and key it lacks
	python3 ops/compose_env.py

compose-up: compose-env ## Start docker-compose.yml (ARGS=--scale worker=4), making .env first if missing
	docker compose up --build $(ARGS)

screenshots: install browser ## Take the dashboard's screenshots at laptop and phone sizes into docs/screenshots
	GOALKEEPER_SCREENSHOTS=docs/screenshots $(PY) -m pytest tests/test_dashboard.py tests/test_start_work.py tests/test_task_page.py -k screenshots

bench: install ## Print throughput and memory figures
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .goalkeeper .pytest_cache .mypy_cache .ruff_cache
