# One entry point for every task. Defaults for every variable live in .env.example
# (override them in the environment or in a .env file); scripts/env.sh loads them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
WITH_ENV := set -euo pipefail; . scripts/env.sh;

.PHONY: help venv up down status demo test lint format bench etl generate dbt-build psql \
	spark-venv spark-jars spark-build spark-sql

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

venv: $(VENV)/.installed ## create .venv and install requirements.txt

$(VENV)/.installed: requirements.txt
	@# a venv left half-made (a killed first run: python, no pip) is made again
	@test -x $(PY) -a -x $(VENV)/bin/pip || python3 -m venv --clear $(VENV)
	@echo "[venv] installing requirements.txt into $(VENV)"
	@$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt 2> >(grep -v "is ignored: it is neither" >&2)
	@touch $@

SPARK_VENV := .venv-spark
SPARK_JARS_DIR ?= .local/spark-jars

spark-venv: $(SPARK_VENV)/.installed ## create .venv-spark (pyspark, dbt-spark) for the Spark build

$(SPARK_VENV)/.installed: requirements-spark.txt
	@scripts/spark_setup.sh venv

spark-jars: $(SPARK_JARS_DIR)/.fetched ## fetch the Spark jars (Iceberg, hadoop-aws) from Maven Central once

$(SPARK_JARS_DIR)/.fetched: spark/pom.xml
	@scripts/spark_setup.sh jars

spark-build: venv spark-venv spark-jars ## build on local Spark, publish to PostgreSQL (RAW=dir|s3://bucket/prefix, SINCE=)
	@$(WITH_ENV) test -n "$${RAW:-}" || { echo "make spark-build RAW=<directory or s3://bucket/prefix> [SINCE=2026-11-01]" >&2; exit 2; }; \
		$(SPARK_VENV)/bin/python -m spark build --raw "$$RAW" $${SINCE:+--since "$$SINCE"} $${UNTIL:+--until "$$UNTIL"}

spark-sql: spark-venv spark-jars ## one query on the Spark warehouse, rows printed (SQL="select ...")
	@$(WITH_ENV) test -n "$${SQL:-}" || { echo 'make spark-sql SQL="select count(*) from fact_events"' >&2; exit 2; }; \
		$(SPARK_VENV)/bin/python -m spark sql "$$SQL"

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

test: venv spark-venv spark-jars ## set up what is needed and run every test and linter
	@scripts/test.sh

lint: venv ## sqlfluff, ruff, cfn-lint and checkov; fails on a violation
	@scripts/lint.sh

format: venv ## apply ruff format and sqlfluff fix
	@$(VENV)/bin/ruff format .
	@$(WITH_ENV) $(VENV)/bin/sqlfluff fix models

bench: venv ## run the benchmarks and print figures (see docs/benchmarks.md)
	@scripts/bench.sh
