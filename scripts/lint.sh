#!/usr/bin/env bash
# make lint: ruff (lint + format check), sqlfluff on the dbt models, and the
# infrastructure linters. Exits non-zero on any violation.
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$PROJECT_ROOT"

echo "[lint] ruff check"
.venv/bin/ruff check .
echo "[lint] ruff format --check"
.venv/bin/ruff format --check .
echo "[lint] sqlfluff lint models"
# the dbt templater compiles the project: it needs the warehouse reachable
scripts/services.sh pg-up
DBT_TARGET_PATH="$PROJECT_ROOT/.local/sqlfluff-target" .venv/bin/sqlfluff lint models --disable-progress-bar
if [ -x scripts/lint-infra.sh ]; then
    scripts/lint-infra.sh
fi
echo "[lint] all linters passed"
