#!/usr/bin/env bash
# Build the warehouse bundle and upload it to the artifacts bucket the stack's instance reads
# (ArtifactsBucketName/ArtifactsPrefix). Run it on a machine WITH internet, before `sam deploy`
# and again whenever the dashboards change (then re-run the bootstrap through Session Manager).
#
#   infra/warehouse/package.sh s3://my-artifacts-bucket/clickstream/warehouse/
#
# The bundle: bootstrap.sh, roles.sql, dashboard_app.py, shiny/ (the app), dashboard-requirements.txt,
# wheels/ (manylinux x86_64 wheels for CPython 3.11, installed with --no-index on the instance) and
# shiny-server-*.rpm (Posit's RHEL 8 build; check https://posit.co/download/shiny-server/ for the current one).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DEST="${1:?usage: $0 s3://bucket/prefix/ [--no-upload]}"
UPLOAD=1
[ "${2:-}" = "--no-upload" ] && UPLOAD=0
SHINY_SERVER_RPM_URL="${SHINY_SERVER_RPM_URL:-https://download3.rstudio.org/centos8/x86_64/shiny-server-1.5.22.1017-x86_64.rpm}"
OUT="${BUNDLE_DIR:-$ROOT/infra/.build/warehouse}"
PIP="${PIP:-$ROOT/.venv/bin/pip}"

case "$DEST" in s3://*/) ;; *) echo "destination must look like s3://bucket/prefix/ (ending in /)" >&2; exit 2 ;; esac

rm -rf "$OUT"
mkdir -p "$OUT/shiny" "$OUT/wheels"
cp "$ROOT/infra/warehouse/bootstrap.sh" "$ROOT/infra/warehouse/roles.sql" "$ROOT/infra/warehouse/dashboard_app.py" "$OUT/"
tar -C "$ROOT/shiny" --exclude='__pycache__' --exclude='*.pyc' -cf - . | tar -C "$OUT/shiny" -xf -

# the dashboards' runtime, pinned exactly as in requirements.txt
grep -E '^(shiny|plotly|pandas|psycopg2-binary)==' "$ROOT/requirements.txt" >"$OUT/dashboard-requirements.txt"
echo "[package] downloading wheels for: $(tr '\n' ' ' <"$OUT/dashboard-requirements.txt")"
"$PIP" download -q --only-binary=:all: --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
    --python-version 3.11 --implementation cp -d "$OUT/wheels" -r "$OUT/dashboard-requirements.txt"

echo "[package] downloading Shiny Server: $SHINY_SERVER_RPM_URL"
curl -fsSL -o "$OUT/$(basename "$SHINY_SERVER_RPM_URL")" "$SHINY_SERVER_RPM_URL"

if [ "$UPLOAD" = 1 ]; then
    echo "[package] uploading to $DEST"
    aws s3 sync --only-show-errors --delete "$OUT/" "$DEST"
fi
echo "[package] bundle ready in $OUT"
