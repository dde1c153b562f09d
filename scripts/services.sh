#!/usr/bin/env bash
# Start and stop the project's local services (idempotent):
#   - a project-local PostgreSQL cluster on 127.0.0.1:$PGPORT (data under .local/pg)
#   - the local S3 endpoint (moto's server through scripts/local_s3.py) on 127.0.0.1:$MOTO_PORT with the raw bucket created
# Usage: scripts/services.sh up|down|status|pg-up|pg-down|s3-up|s3-down
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$PROJECT_ROOT"

LOCAL_DIR="${LOCAL_DIR:-$PROJECT_ROOT/.local}"
PG_BASE="${PG_BASE:-$LOCAL_DIR/pg}"
LOG_DIR="$LOCAL_DIR/logs"
VENV_BIN="$PROJECT_ROOT/.venv/bin"
mkdir -p "$LOG_DIR"

log() { printf '[services] %s\n' "$*" >&2; }

find_pg_bin() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            PG_BIN="$d"
        fi
    done
    if [ -z "${PG_BIN:-}" ] && command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        PG_BIN="$(dirname "$(command -v initdb)")"
    fi
}

ensure_pg_bin() {
    PG_BIN=""
    find_pg_bin
    if [ -n "$PG_BIN" ]; then return 0; fi
    if [ "$(id -u)" = "0" ]; then
        log "PostgreSQL server binaries not found: installing postgresql with apt-get"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        find_pg_bin
    fi
    if [ -z "$PG_BIN" ]; then
        log "PostgreSQL server binaries not found. Install them with:"
        log "    sudo apt-get update && sudo apt-get install -y postgresql"
        exit 1
    fi
}

# When run as root the server runs as an unprivileged OS user.
PG_OS_USER=""
as_pg() {
    if [ -n "$PG_OS_USER" ]; then
        runuser -u "$PG_OS_USER" -- "$@"
    else
        "$@"
    fi
}

# a data folder the server's OS user can reach when the checkout itself is private
fallback_pg_base() {
    printf '/var/tmp/clickstream-pg-%s' "$(printf '%s' "$PG_BASE" | md5sum | cut -c1-8)"
}

prepare_pg_user() {
    if [ "$(id -u)" != "0" ]; then return 0; fi
    PG_OS_USER="${PG_OS_USER_NAME:-postgres}"
    if ! id "$PG_OS_USER" >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_OS_USER"
    fi
    mkdir -p "$PG_BASE"
    # the server user must be able to reach the data folder; a checkout under a
    # private home (e.g. /root) is not reachable, so fall back to /var/tmp.
    if ! runuser -u "$PG_OS_USER" -- test -x "$PG_BASE"; then
        local alt
        alt="$(fallback_pg_base)"
        log "$PG_BASE is not reachable by OS user $PG_OS_USER; using $alt"
        PG_BASE="$alt"
        mkdir -p "$PG_BASE"
    fi
    chown "$PG_OS_USER" "$PG_BASE"
}

pg_is_running() {
    [ -f "$PG_BASE/data/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$PG_BASE/data" status >/dev/null 2>&1
}

pg_up() {
    ensure_pg_bin
    prepare_pg_user
    if [ ! -f "$PG_BASE/data/PG_VERSION" ]; then
        log "initialising PostgreSQL cluster in $PG_BASE/data ($PG_BIN)"
        as_pg mkdir -p "$PG_BASE/data" "$PG_BASE/run"
        local pwfile="$PG_BASE/run/pwfile"
        as_pg sh -c "umask 077; printf '%s\n' \"\$1\" > \"\$2\"" _ "$PGPASSWORD" "$pwfile"
        as_pg "$PG_BIN/initdb" -D "$PG_BASE/data" -U "$PGUSER" --pwfile="$pwfile" \
            --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$LOG_DIR/initdb.log" 2>&1 \
            || { cat "$LOG_DIR/initdb.log" >&2; exit 1; }
        as_pg rm -f "$pwfile"
        as_pg sh -c "cat >> '$PG_BASE/data/postgresql.conf'" <<CONF
# clickstream-analytics local settings
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$PG_BASE/run'
max_connections = 200
shared_buffers = 512MB
work_mem = 32MB
maintenance_work_mem = 256MB
max_wal_size = 4GB
logging_collector = off
CONF
    fi
    as_pg mkdir -p "$PG_BASE/run"
    if pg_is_running; then
        log "PostgreSQL already running on 127.0.0.1:$PGPORT"
    else
        log "starting PostgreSQL on 127.0.0.1:$PGPORT"
        local pglog="$PG_BASE/server.log"
        as_pg "$PG_BIN/pg_ctl" -D "$PG_BASE/data" -l "$pglog" -o "-p $PGPORT" -w -t 60 start >/dev/null \
            || { tail -n 30 "$pglog" >&2; exit 1; }
    fi
    # the warehouse database
    if ! psql -X -q -d postgres -tAc "select 1 from pg_database where datname = '$PGDATABASE'" | grep -q 1; then
        log "creating database $PGDATABASE"
        psql -X -q -d postgres -c "create database \"$PGDATABASE\"" >/dev/null
    fi
}

pg_down() {
    PG_BIN=""
    find_pg_bin
    if [ -z "$PG_BIN" ]; then return 0; fi
    if [ "$(id -u)" = "0" ]; then
        PG_OS_USER="${PG_OS_USER_NAME:-postgres}"
        if [ ! -d "$PG_BASE/data" ] || ! runuser -u "$PG_OS_USER" -- test -x "$PG_BASE" 2>/dev/null; then
            PG_BASE="$(fallback_pg_base)"
        fi
        id "$PG_OS_USER" >/dev/null 2>&1 || return 0
    fi
    if [ -d "$PG_BASE/data" ] && pg_is_running; then
        log "stopping PostgreSQL"
        as_pg "$PG_BIN/pg_ctl" -D "$PG_BASE/data" -m fast -w stop >/dev/null
    else
        log "PostgreSQL not running"
    fi
}

s3_is_running() {
    python3 - "$MOTO_PORT" <<'PY'
import socket, sys
s = socket.socket()
s.settimeout(0.5)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PY
}

s3_up() {
    if s3_is_running; then
        log "S3 (moto) already running on 127.0.0.1:$MOTO_PORT"
    else
        log "starting S3 (moto server) on 127.0.0.1:$MOTO_PORT"
        nohup "$VENV_BIN/python" scripts/local_s3.py -H 127.0.0.1 -p "$MOTO_PORT" >"$LOG_DIR/moto.log" 2>&1 &
        echo $! >"$LOCAL_DIR/moto.pid"
        for _ in $(seq 1 100); do
            s3_is_running && break
            sleep 0.1
        done
        s3_is_running || { log "moto did not start; see $LOG_DIR/moto.log"; exit 1; }
    fi
    "$VENV_BIN/python" - <<'PY'
import os
import boto3
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"])
bucket = os.environ["RAW_BUCKET"]
names = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
if bucket not in names:
    s3.create_bucket(Bucket=bucket)
PY
}

s3_down() {
    if [ -f "$LOCAL_DIR/moto.pid" ]; then
        local pid
        pid="$(cat "$LOCAL_DIR/moto.pid")"
        if kill -0 "$pid" 2>/dev/null; then
            log "stopping S3 (moto)"
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
        rm -f "$LOCAL_DIR/moto.pid"
    else
        log "S3 (moto) not running"
    fi
}

case "${1:-}" in
    up) pg_up; s3_up ;;
    down) s3_down; pg_down ;;
    pg-up) pg_up ;;
    pg-down) pg_down ;;
    s3-up) s3_up ;;
    s3-down) s3_down ;;
    status)
        PG_BIN=""; find_pg_bin
        if psql -X -q -d postgres -tAc 'select 1' >/dev/null 2>&1; then echo "postgres: up on $PGHOST:$PGPORT"; else echo "postgres: down"; fi
        if s3_is_running; then echo "s3: up on $AWS_ENDPOINT_URL"; else echo "s3: down"; fi
        ;;
    *) echo "usage: $0 up|down|status|pg-up|pg-down|s3-up|s3-down" >&2; exit 2 ;;
esac
