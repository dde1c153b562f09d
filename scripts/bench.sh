#!/usr/bin/env bash
# make bench: run every benchmark script in bench/ and print their figures (bench/cycles.py:
# the 15-minute ETL cycle at 1 M events a day, about 8 minutes at its defaults; bench/forget.py:
# one person's erasure on a day of that shop, about 7 minutes with the history it builds; bench/ingest.py:
# the local ingest server at 1, 50 and 200 concurrent clients, about 40 seconds).
# bench/spark.py (Spark vs PostgreSQL, about 40 minutes; needs make spark-venv spark-jars) is
# the slow case, run last: BENCH_SPARK=0 skips it.
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$PROJECT_ROOT"
scripts/services.sh up
for script in bench/*.py; do
    # a module the benchmarks share, not one of them
    grep -q '^if __name__ == "__main__":' "$script" || continue
    if [ "$script" = bench/spark.py ] && [ "${BENCH_SPARK:-1}" = 0 ]; then
        echo "=== $script skipped (BENCH_SPARK=0)"
        continue
    fi
    echo "=== $script"
    .venv/bin/python "$script" "$@"
done
