# Customer Lens — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.DEFAULT_GOAL := help
.PHONY: help install run test lint format lock airflow report roles warehouse-start warehouse-stop bench clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

# The venv is rebuilt only when the lock or the package metadata change, so re-running is instant.
$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: Python 3.11 not found (set PYTHON=/path/to/python3.11)"; exit 1; }
	@echo "Installing the pinned stack (Airflow, dbt, Great Expectations...) into .venv: about a minute the first time"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the pinned stack (only when requirements change)

run: $(STAMP) ## The main job: warehouse up, demo sources built, pipeline run
	$(BIN)/lens run

test: $(STAMP) ## Run the test suite (real PostgreSQL, real Airflow)
	$(BIN)/pytest

lint: $(STAMP) ## The pre-commit checks on every file: ruff lint and format, sqlfluff (dbt models), mypy, YAML, private keys, merge markers
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pre-commit run --all-files --show-diff-on-failure

format: $(STAMP) ## Format the Python code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lock: ## Re-resolve requirements.in into the pinned requirements.txt
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv && .lock-venv/bin/pip install -q --upgrade pip
	.lock-venv/bin/pip install -q -r requirements.in
	{ echo "# Full pinned lock of the Customer Lens stack (Python 3.11). Regenerate with: make lock"; \
	  .lock-venv/bin/pip freeze --exclude-editable; } > requirements.txt
	rm -rf .lock-venv

AIRFLOW_PORT ?= 8080
airflow: $(STAMP) ## Airflow 3 UI on http://127.0.0.1:8080 (AIRFLOW_PORT=N for another) with the DAGs and the Customer Lens page
	$(BIN)/lens airflow --port $(AIRFLOW_PORT)

report: $(STAMP) ## Write the offline HTML report of the current baseline
	$(BIN)/lens report

roles: $(STAMP) ## Create/refresh the warehouse roles (bi_reader, lens_loader, lens_transformer)
	$(BIN)/lens roles

warehouse-start: $(STAMP) ## Start the embedded warehouse
	$(BIN)/lens warehouse start

warehouse-stop: $(STAMP) ## Stop the embedded warehouse
	$(BIN)/lens warehouse stop

bench: $(STAMP) ## Benchmarks at medium scale: demo generation, extraction, end to end, transform (results in bench/results/)
	$(BIN)/python bench/generate.py --scale medium
	$(BIN)/python bench/extract.py --scale medium
	$(BIN)/python bench/end_to_end.py --scales medium
	$(BIN)/python bench/transform.py --scales medium

clean: ## Stop the warehouse and delete local state (.lens) — the venv stays
	-$(BIN)/lens warehouse stop
	rm -rf .lens
