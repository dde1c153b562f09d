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
        as_pg sh -c "umask 077; printf '%s\n' \"\$1\" > \"\$2\"" _ "$PGADMIN_PASSWORD" "$pwfile"
        # the cluster's superuser is the administrator; the pipeline's roles are made below
        as_pg "$PG_BIN/initdb" -D "$PG_BASE/data" -U "$PGADMIN_USER" --pwfile="$pwfile" \
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
    # one at a time: test sessions started together each run pg-up
    exec 9>"$LOCAL_DIR/roles.lock"
    flock 9
    pg_roles_up
    exec 9>&-
}

# psql over the cluster's Unix socket, which trusts the local OS user (initdb --auth-local=trust)
socket_psql() {
    PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -h "$PG_BASE/run" -p "$PGPORT" "$@"
}

# psql as the cluster's superuser: it makes databases and roles, the pipeline never uses it
admin_psql() {
    socket_psql -U "$PGADMIN_USER" "$@"
}

# The roles as in AWS (docs/warehouse.md "Roles"): $PGADMIN_USER is the only superuser; the ETL
# role $PGUSER owns the warehouse database and is no superuser; the dashboards' role
# $DASHBOARD_PGUSER reads schema analytics only, read-only by default, and may connect to the
# warehouse database only. Idempotent, and it brings a cluster made before to these roles.
pg_roles_up() {
    if ! admin_psql -d postgres -tAc 'select 1' >/dev/null 2>&1; then
        adopt_cluster_made_by_etl_role
    fi
    admin_psql -d postgres >/dev/null <<SQL
\set admin_role '$PGADMIN_USER'
\set admin_password '$PGADMIN_PASSWORD'
select format('alter role %I with login superuser password %L', :'admin_role', :'admin_password') \gexec
revoke connect, temporary on database postgres, template0, template1 from public;
SQL
    hand_over_to_etl_role
    apply_roles_sql "$PGDATABASE"
}

# infra/warehouse/roles.sql with this environment's names and passwords (on stdin, as the AWS
# bootstrap passes them), one run at a time: concurrent ALTER ROLEs of one role fail
apply_roles_sql() {
    {
        cat <<SQL
\set dbname '$1'
\set loader_role '$PGUSER'
\set loader_password '$PGPASSWORD'
\set reader_role '$DASHBOARD_PGUSER'
\set reader_password '$DASHBOARD_PGPASSWORD'
select pg_advisory_lock(hashtext('clickstream roles.sql')) \gset
SQL
        cat "$PROJECT_ROOT/infra/warehouse/roles.sql"
    } | admin_psql -d postgres -f - >/dev/null
}

# A cluster made before these roles: initdb made $PGUSER its bootstrap superuser, the owner of
# everything. A bootstrap superuser cannot stop being one, so it becomes $PGADMIN_USER (renamed
# by a short-lived second superuser) and $PGUSER is made anew as a plain role.
adopt_cluster_made_by_etl_role() {
    local bootstrap
    bootstrap="$(socket_psql -U "$PGUSER" -d postgres -tAc 'select rolname from pg_roles where oid = 10')" || {
        log "cannot connect to the local cluster as $PGADMIN_USER or $PGUSER over $PG_BASE/run"
        exit 1
    }
    log "bringing the cluster in $PG_BASE to the roles of AWS: $PGADMIN_USER administers, $PGUSER owns the warehouse"
    if [ "$bootstrap" != "$PGUSER" ]; then
        socket_psql -U "$PGUSER" -d postgres -c "create role \"$PGADMIN_USER\" with login superuser" >/dev/null
        return 0
    fi
    local helper="clickstream_roles_setup"
    socket_psql -U "$PGUSER" -d postgres >/dev/null <<SQL
drop role if exists "$helper";
create role "$helper" with login superuser;
SQL
    socket_psql -U "$helper" -d postgres >/dev/null <<SQL
alter role "$PGUSER" rename to "$PGADMIN_USER";
create role "$PGUSER" with login nosuperuser nocreatedb nocreaterole;
-- the role's own settings (the loader's jit = off) stay with the ETL role
select format(
    'alter role %I%s set %s = %L',
    '$PGUSER',
    case when s.setdatabase = 0 then '' else format(' in database %I', d.datname) end,
    split_part(c.setting, '=', 1),
    substr(c.setting, strpos(c.setting, '=') + 1)
)
from pg_db_role_setting as s
left join pg_database as d on s.setdatabase = d.oid
cross join lateral unnest(s.setconfig) as c (setting)
where s.setrole = 10
\gexec
SQL
    admin_psql -d postgres -c "drop role \"$helper\"" >/dev/null
}

# Databases (but postgres and the templates) still owned by the bootstrap superuser were made by
# the ETL role before it was renamed: the ETL role gets them back with what they hold.
hand_over_to_etl_role() {
    local db
    for db in $(admin_psql -d postgres -tAc "select datname from pg_database
            where datdba = 10 and datallowconn and datname not in ('postgres', 'template0', 'template1')"); do
        log "handing database $db and its objects to $PGUSER"
        {
            printf '%s\n' "\\set etl_role '$PGUSER'"
            cat <<'SQL'
select format('alter schema %I owner to %I', n.nspname, :'etl_role')
from pg_namespace as n
where n.nspowner = 10 and n.nspname <> 'information_schema' and n.nspname !~ '^pg_'
\gexec
select format(
    'alter %s %s owner to %I',
    case c.relkind
        when 'v' then 'view' when 'm' then 'materialized view' when 'f' then 'foreign table'
        when 'S' then 'sequence' else 'table'
    end,
    c.oid::regclass, :'etl_role'
)
from pg_class as c
inner join pg_namespace as n on c.relnamespace = n.oid
where
    c.relowner = 10 and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
    and n.nspname <> 'information_schema' and n.nspname !~ '^pg_'
    -- a column's sequence follows its table
    and not (
        c.relkind = 'S' and exists (
            select from pg_depend as d
            where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype in ('a', 'i')
        )
    )
\gexec
select format(
    'alter %s %s owner to %I',
    case p.prokind when 'p' then 'procedure' when 'a' then 'aggregate' else 'function' end,
    p.oid::regprocedure, :'etl_role'
)
from pg_proc as p
inner join pg_namespace as n on p.pronamespace = n.oid
where
    p.proowner = 10 and n.nspname <> 'information_schema' and n.nspname !~ '^pg_'
    and not exists (select from pg_depend as d where d.objid = p.oid and d.deptype = 'e')
\gexec
select format('alter type %s owner to %I', t.oid::regtype, :'etl_role')
from pg_type as t
inner join pg_namespace as n on t.typnamespace = n.oid
left join pg_class as c on t.typrelid = c.oid
where
    t.typowner = 10 and n.nspname <> 'information_schema' and n.nspname !~ '^pg_'
    and (t.typtype in ('e', 'd', 'r') or c.relkind = 'c')
    and not exists (select from pg_depend as d where d.objid = t.oid and d.deptype = 'e')
\gexec
select format('alter database %I owner to %I', current_database(), :'etl_role')
\gexec
SQL
        } | admin_psql -d "$db" -f - >/dev/null || log "could not hand database $db to $PGUSER (dropped meanwhile?)"
    done
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
        if psql -X -q -d "$PGDATABASE" -tAc 'select 1' >/dev/null 2>&1; then echo "postgres: up on $PGHOST:$PGPORT"; else echo "postgres: down"; fi
        if s3_is_running; then echo "s3: up on $AWS_ENDPOINT_URL"; else echo "s3: down"; fi
        ;;
    *) echo "usage: $0 up|down|status|pg-up|pg-down|s3-up|s3-down" >&2; exit 2 ;;
esac
