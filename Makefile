# One entry point for every task. Defaults for every variable live in .env.example
# (override them in the environment or in a .env file); scripts/env.sh loads them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
WITH_ENV := set -euo pipefail; . scripts/env.sh;

.PHONY: help venv up down status demo test lint format bench etl generate dbt-build psql

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

venv: $(VENV)/.installed ## create .venv and install requirements.txt

$(VENV)/.installed: requirements.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	@echo "[venv] installing requirements.txt into $(VENV)"
	@$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt 2> >(grep -v "is ignored: it is neither" >&2)
	@touch $@

up: venv ## start PostgreSQL and the local S3 endpoint (idempotent)
	@scripts/services.sh up

down: ## stop everything make demo / make up started (idempotent)
	@scripts/demo.sh stop
	@scripts/services.sh down

status: ## show which local services are running
	@scripts/services.sh status

demo: venv ## set up everything and run the whole pipeline; dashboards on :3838
	@scripts/demo.sh start

etl: venv ## run the ETL now: load new raw files, then dbt build
	@$(WITH_ENV) $(PY) -m loader load

generate: venv ## generate traffic into the raw bucket (DAYS=, EVENTS=, SEED=)
	@$(WITH_ENV) $(PY) -m generator --days "$${DAYS:-$$DEMO_DAYS}" --seed "$${SEED:-$$DEMO_SEED}" \
		$${EVENTS:+--events $$EVENTS} --out "s3://$$RAW_BUCKET/$$RAW_PREFIX"

dbt-build: venv ## run dbt build against the local warehouse
	@$(WITH_ENV) $(VENV)/bin/dbt build --project-dir . --profiles-dir .

psql: ## open psql on the local warehouse
	@$(WITH_ENV) psql

test: venv ## set up what is needed and run every test and linter
	@scripts/test.sh

lint: venv ## sqlfluff, ruff, cfn-lint and checkov; fails on a violation
	@scripts/lint.sh

format: venv ## apply ruff format and sqlfluff fix
	@$(VENV)/bin/ruff format .
	@$(WITH_ENV) $(VENV)/bin/sqlfluff fix models

bench: venv ## run the benchmarks and print figures (see docs/benchmarks.md)
	@scripts/bench.sh
