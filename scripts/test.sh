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

# the browser tests' npm packages (analytics.js 2.0), once per lock file
scripts/node_deps.sh

# the local PostgreSQL cluster; each test session works in databases of its own
scripts/services.sh pg-up

status=0
spark_status=0
if [ "$#" = "0" ]; then
    # every test: the Spark ones (tests/on_spark) in a pytest of their own beside the rest. They
    # wait mostly on one thread (JVM start-up, query planning, dbt's Python), so side by side
    # they add minutes to the run instead of their whole length. Their output follows.
    mkdir -p .local/logs
    spark_log=.local/logs/test-spark.log
    echo "[test] the Spark tests run beside the others (output: $spark_log, shown at the end)"
    .venv/bin/python -m pytest tests/on_spark -p no:cacheprovider --basetemp=.local/pytest-spark \
        >"$spark_log" 2>&1 &
    spark_pid=$!
    trap 'kill "$spark_pid" 2>/dev/null || true' EXIT
    .venv/bin/python -m pytest --ignore=tests/on_spark || status=$?
    wait "$spark_pid" || spark_status=$?
    trap - EXIT
    echo "[test] the Spark tests (tests/on_spark):"
    cat "$spark_log"
else
    .venv/bin/python -m pytest "$@" || status=$?
fi
for code in "$status" "$spark_status"; do
    if [ "$code" = "5" ]; then
        echo "[test] pytest collected no tests: failing" >&2
        exit 1
    fi
done
if [ "$status" != "0" ]; then
    exit "$status"
fi
if [ "$spark_status" != "0" ]; then
    exit "$spark_status"
fi

scripts/lint.sh
