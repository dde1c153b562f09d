#!/usr/bin/env bash
# Stage what `sam build` packages, so it never copies the repository root (.venv, .local, data):
#   infra/.build/ingest/  -> the ingest Lambda's zip: ingest/ + contract/ + requirements.txt
#   infra/.build/etl/     -> the ETL image's Docker context: Dockerfile + loader/ + the dbt project
# Usage: infra/stage.sh [OUT_DIR]   (default infra/.build; the template points at infra/.build)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-$ROOT/infra/.build}"

copy_tree() {  # copy_tree SRC DEST: a source folder without caches
    mkdir -p "$2"
    tar -C "$ROOT" --exclude='__pycache__' --exclude='*.pyc' --exclude='target' --exclude='logs' \
        -cf - "$1" | tar -C "$2" -xf -
}

rm -rf "$OUT/ingest" "$OUT/etl"
mkdir -p "$OUT/ingest" "$OUT/etl"

# ingest: handler ingest.handler.lambda_handler; the contract next to the package
copy_tree ingest "$OUT/ingest"
copy_tree contract "$OUT/ingest"
cp "$ROOT/infra/ingest/requirements.txt" "$OUT/ingest/requirements.txt"

# etl: loader + dbt project (dbt_project.yml, profiles.yml, models/, dbt_project/)
for path in loader contract models dbt_project dbt_project.yml profiles.yml; do
    copy_tree "$path" "$OUT/etl"
done
cp "$ROOT/infra/etl/Dockerfile" "$ROOT/infra/etl/requirements.txt" "$OUT/etl/"

echo "[stage] staged ingest and etl build inputs in $OUT"
