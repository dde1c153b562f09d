#!/usr/bin/env bash
# make bench: run every benchmark script in bench/ and print their figures.
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$PROJECT_ROOT"
scripts/services.sh up
for script in bench/*.py; do
    echo "=== $script"
    .venv/bin/python "$script" "$@"
done
