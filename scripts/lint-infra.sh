#!/usr/bin/env bash
# Infrastructure linters (called by scripts/lint.sh): cfn-lint on the SAM template (from .venv)
# and checkov (from its own virtual environment .venv-checkov, created on first use: checkov pins
# an old `packaging` that breaks pytest 9, so it must never be installed into .venv).
# Exits non-zero on any finding that the template does not skip with a written reason.
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$PROJECT_ROOT"

TEMPLATE="infra/template.yaml"
CHECKOV_VENV="${CHECKOV_VENV:-$PROJECT_ROOT/.venv-checkov}"
CHECKOV_REQ="infra/requirements-checkov.txt"

log() { printf '[lint-infra] %s\n' "$*" >&2; }

echo "[lint] cfn-lint $TEMPLATE"
.venv/bin/cfn-lint -- "$TEMPLATE"

# (re)install checkov when the venv is missing or the pinned requirements changed since
stamp="$CHECKOV_VENV/.installed-$(sha256sum "$CHECKOV_REQ" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    log "installing checkov into $CHECKOV_VENV (pinned in $CHECKOV_REQ)"
    [ -x "$CHECKOV_VENV/bin/python" ] || python3 -m venv "$CHECKOV_VENV"
    "$CHECKOV_VENV/bin/pip" install -q --disable-pip-version-check \
        -r "$CHECKOV_REQ" 2> >(grep -v "is ignored: it is neither" >&2)
    rm -f "$CHECKOV_VENV"/.installed-*
    touch "$stamp"
fi

echo "[lint] checkov $TEMPLATE"
# --framework cloudformation parses the SAM template (AWS::Serverless::* included);
# skipped checks carry their reason as `checkov:skip=ID:reason` comments next to the resource.
"$CHECKOV_VENV/bin/checkov" --quiet --compact --skip-download \
    --framework cloudformation --file "$TEMPLATE"
