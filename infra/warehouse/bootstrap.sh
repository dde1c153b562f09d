#!/bin/bash
# Warehouse instance bootstrap (Amazon Linux 2023, run as root by the instance's user data, which
# downloads it from the artifacts bundle). Idempotent: safe to re-run through Session Manager
# (`sudo bash /opt/clickstream/bootstrap.sh /etc/clickstream/bootstrap.env`), e.g. after a new bundle
# or a rotated secret.
#
# The VPC has no NAT and no internet: packages come from
#   - Amazon Linux 2023's own repositories, which are served from S3 (allowed by the S3 gateway
#     endpoint's policy): postgresql15-server, python3.11, jq;
#   - the artifacts bundle (s3://$ARTIFACTS_S3, written by infra/warehouse/package.sh): Shiny Server's
#     RPM, the dashboards' wheels, the app (shiny/) and this script;
#   - or nothing at all with a pre-baked AMI (WarehouseAmiId), where every install step is skipped.
#
# Steps: packages -> bundle -> credentials (Secrets Manager) -> PostgreSQL (database, loader role,
# read-only role) -> dashboards venv + app -> Shiny Server on 127.0.0.1:3838/$DASHBOARD_PATH.
set -euo pipefail

ENV_FILE="${1:-/etc/clickstream/bootstrap.env}"
set -a
# shellcheck disable=SC1090
. "$ENV_FILE"
set +a
: "${ARTIFACTS_S3:?}" "${DB_SECRET_ID:?}" "${READER_SECRET_ID:?}" "${DATABASE_NAME:?}"
: "${LOADER_ROLE:?}" "${READER_ROLE:?}" "${VPC_CIDR:?}"
DASHBOARD_PATH="${DASHBOARD_PATH:-clickstream-analytics}"
SHINY_PORT="${SHINY_PORT:-3838}"
BASE=/opt/clickstream
BUNDLE="$BASE/bundle"
VENV="$BASE/venv"
PGDATA=/var/lib/pgsql/data
SECRET_WAIT_SECONDS="${SECRET_WAIT_SECONDS:-1800}"

log() { printf '[bootstrap %s] %s\n' "$(date -u +%FT%TZ)" "$*"; }

install_packages() {
    local missing=()
    rpm -q postgresql15-server >/dev/null 2>&1 || missing+=(postgresql15-server postgresql15)
    rpm -q python3.11 >/dev/null 2>&1 || missing+=(python3.11 python3.11-pip)
    command -v jq >/dev/null 2>&1 || missing+=(jq)
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing from the Amazon Linux 2023 repositories (via the S3 gateway endpoint): ${missing[*]}"
        dnf install -y -q "${missing[@]}"
    fi
}

fetch_bundle() {
    log "syncing the artifacts bundle from $ARTIFACTS_S3"
    mkdir -p "$BUNDLE"
    aws s3 sync --only-show-errors --delete "$ARTIFACTS_S3" "$BUNDLE/"
}

imds() {
    local token
    token="$(curl -fsS -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60')"
    curl -fsS -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}

# The loader's secret is created after the instance (it carries the instance's address), so wait
# for it, and for the version naming this instance (a replaced instance must not use a stale one).
read_secrets() {
    local my_ip deadline secret=""
    my_ip="$(imds local-ipv4)"
    deadline=$(($(date +%s) + SECRET_WAIT_SECONDS))
    log "waiting for secret $DB_SECRET_ID with host $my_ip"
    while :; do
        secret="$(aws secretsmanager get-secret-value --secret-id "$DB_SECRET_ID" \
            --query SecretString --output text 2>/dev/null || true)"
        if [ -n "$secret" ] && [ "$(jq -r '.host // empty' <<<"$secret")" = "$my_ip" ]; then
            break
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            log "secret $DB_SECRET_ID never named this instance ($my_ip): giving up"
            exit 1
        fi
        sleep 10
    done
    LOADER_PASSWORD="$(jq -r .password <<<"$secret")"
    READER_PASSWORD="$(aws secretsmanager get-secret-value --secret-id "$READER_SECRET_ID" \
        --query SecretString --output text | jq -r .password)"
    [ -n "$LOADER_PASSWORD" ] && [ -n "$READER_PASSWORD" ] || { log "empty password in a secret"; exit 1; }
}

setup_postgres() {
    if [ ! -f "$PGDATA/PG_VERSION" ]; then
        log "initialising PostgreSQL in $PGDATA"
        postgresql-setup --initdb
    fi
    # listen on the private address for the ETL Lambda (the security group admits only its group)
    cat >"$PGDATA/conf.d-clickstream.conf" <<CONF
listen_addresses = '*'
port = 5432
password_encryption = 'scram-sha-256'
ssl = off
shared_buffers = 512MB
work_mem = 32MB
maintenance_work_mem = 256MB
log_connections = on
CONF
    grep -q "^include_if_exists = 'conf.d-clickstream.conf'" "$PGDATA/postgresql.conf" \
        || echo "include_if_exists = 'conf.d-clickstream.conf'" >>"$PGDATA/postgresql.conf"
    cat >"$PGDATA/pg_hba.conf" <<HBA
# TYPE  DATABASE          USER             ADDRESS        METHOD
local   all               postgres                        peer
host    ${DATABASE_NAME}  ${READER_ROLE}   127.0.0.1/32   scram-sha-256
host    ${DATABASE_NAME}  ${LOADER_ROLE}   127.0.0.1/32   scram-sha-256
host    ${DATABASE_NAME}  ${LOADER_ROLE}   ${VPC_CIDR}    scram-sha-256
HBA
    chown postgres:postgres "$PGDATA/conf.d-clickstream.conf" "$PGDATA/pg_hba.conf"
    chmod 0600 "$PGDATA/pg_hba.conf"
    systemctl enable postgresql >/dev/null
    systemctl restart postgresql
    log "creating database $DATABASE_NAME and roles $LOADER_ROLE, $READER_ROLE"
    # passwords go through stdin, never the command line
    {
        printf "\\\\set dbname '%s'\n\\\\set loader_role '%s'\n\\\\set reader_role '%s'\n" \
            "$DATABASE_NAME" "$LOADER_ROLE" "$READER_ROLE"
        printf "\\\\set loader_password '%s'\n\\\\set reader_password '%s'\n" "$LOADER_PASSWORD" "$READER_PASSWORD"
        cat "$BUNDLE/roles.sql"
    } | runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d postgres -f -
}

setup_dashboards() {
    if [ ! -x "$VENV/bin/python" ]; then
        python3.11 -m venv "$VENV"
    fi
    if [ -d "$BUNDLE/wheels" ]; then
        log "installing the dashboards' packages from the bundle's wheels (no index)"
        "$VENV/bin/pip" install -q --no-index --find-links "$BUNDLE/wheels" -r "$BUNDLE/dashboard-requirements.txt"
    fi
    id shiny >/dev/null 2>&1 || useradd --system --home-dir /srv/shiny-server --shell /sbin/nologin shiny
    mkdir -p "$BASE/shiny" "/srv/shiny-server/$DASHBOARD_PATH" /etc/clickstream
    cp -r "$BUNDLE/shiny/." "$BASE/shiny/"
    install -m 0644 "$BUNDLE/dashboard_app.py" "/srv/shiny-server/$DASHBOARD_PATH/app.py"
    umask 077
    cat >/etc/clickstream/dashboard.env <<ENV
PGHOST=127.0.0.1
PGPORT=5432
PGDATABASE=${DATABASE_NAME}
DASHBOARD_PGUSER=${READER_ROLE}
DASHBOARD_PGPASSWORD=${READER_PASSWORD}
ENV
    umask 022
    chown root:shiny /etc/clickstream/dashboard.env
    chmod 0640 /etc/clickstream/dashboard.env

    if ! rpm -q shiny-server >/dev/null 2>&1; then
        log "installing Shiny Server from the bundle"
        dnf install -y -q "$BUNDLE"/shiny-server-*.rpm
    fi
    # loopback only: the dashboards are reached through SSM port forwarding, never the network
    cat >/etc/shiny-server/shiny-server.conf <<CONF
# written by /opt/clickstream/bootstrap.sh
run_as shiny;
python $VENV/bin/python;
server {
  listen $SHINY_PORT 127.0.0.1;
  location /$DASHBOARD_PATH {
    app_dir /srv/shiny-server/$DASHBOARD_PATH;
    log_dir /var/log/shiny-server;
  }
}
CONF
    systemctl enable shiny-server >/dev/null
    systemctl restart shiny-server
}

check() {
    log "checking PostgreSQL and the dashboards"
    PGPASSWORD="$READER_PASSWORD" psql -X -q -h 127.0.0.1 -U "$READER_ROLE" -d "$DATABASE_NAME" -tAc 'select 1' >/dev/null
    for _ in $(seq 1 30); do
        if curl -fsS -o /dev/null "http://127.0.0.1:$SHINY_PORT/$DASHBOARD_PATH/"; then
            log "ready: http://127.0.0.1:$SHINY_PORT/$DASHBOARD_PATH/ (port-forward it with the stack's DashboardPortForwardCommand)"
            return 0
        fi
        sleep 2
    done
    log "Shiny Server does not answer yet: see /var/log/shiny-server/"
    return 1
}

main() {
    log "start"
    install_packages
    fetch_bundle
    read_secrets
    setup_postgres
    setup_dashboards
    check
    log "done"
}

main "$@"
