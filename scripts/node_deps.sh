#!/usr/bin/env bash
# The browser tests' npm packages (Segment's analytics.js 2.0 for tests/ingest/test_segment_browser.py):
# `npm ci` of the committed tests/ingest/analytics_next/package-lock.json into .local/node/analytics-next,
# from the npm registry, once per lock file (a stamp holds its checksum). Nothing is fetched at test
# run time. Needs node and npm (Debian: apt-get install nodejs npm).
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$PROJECT_ROOT"

source_dir=tests/ingest/analytics_next
target=.local/node/analytics-next
stamp="$target/.installed-lock.sha256"
wanted="$(sha256sum "$source_dir/package-lock.json" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && [ -d "$target/node_modules/@segment/analytics-next" ]; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ]; then
        echo "[node] installing Debian's nodejs and npm for the browser tests"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    else
        echo "[node] npm is missing: sudo apt-get install -y nodejs npm" >&2
        exit 1
    fi
fi
echo "[node] npm ci of $source_dir into $target"
mkdir -p "$target"
cp "$source_dir/package.json" "$source_dir/package-lock.json" "$target/"
(cd "$target" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
echo "$wanted" >"$stamp"
