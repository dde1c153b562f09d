#!/usr/bin/env bash
# make test: start what the tests need, run every test (pytest, which also runs
# dbt build on test data and the browser tests), then every linter.
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$PROJECT_ROOT"

if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ]; then
        echo "[test] installing Debian's chromium for the browser tests"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "[test] chromium is missing: sudo apt-get install -y chromium" >&2
        exit 1
    fi
fi

# the local PostgreSQL cluster; each test session works in databases of its own
scripts/services.sh pg-up

status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" = "5" ]; then
    echo "[test] pytest collected no tests: failing" >&2
    exit 1
fi
if [ "$status" != "0" ]; then
    exit "$status"
fi

scripts/lint.sh
