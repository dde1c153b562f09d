#!/usr/bin/env bash
# make demo: start the services, generate a week of shop traffic into the raw bucket,
# load it, run dbt build, then serve the ingest endpoint + storefront, the dashboards
# and the local ETL schedule in the background. Running it again reuses what exists.
# make down (scripts/demo.sh stop) stops the background processes.
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$PROJECT_ROOT"

LOCAL_DIR="${LOCAL_DIR:-$PROJECT_ROOT/.local}"
RUN_DIR="$LOCAL_DIR/run"
LOG_DIR="$LOCAL_DIR/logs"
PY="$PROJECT_ROOT/.venv/bin/python"
mkdir -p "$RUN_DIR" "$LOG_DIR"

log() { printf '[demo] %s\n' "$*"; }

is_running() { [ -f "$RUN_DIR/$1.pid" ] && kill -0 "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null; }

start_bg() {
    local name="$1"
    shift
    if is_running "$name"; then
        log "$name already running (pid $(cat "$RUN_DIR/$name.pid"))"
        return 0
    fi
    log "starting $name (log: $LOG_DIR/$name.log)"
    setsid nohup "$@" >"$LOG_DIR/$name.log" 2>&1 </dev/null &
    echo $! >"$RUN_DIR/$name.pid"
}

stop_bg() {
    local name="$1" pid
    if is_running "$name"; then
        pid="$(cat "$RUN_DIR/$name.pid")"
        log "stopping $name"
        kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$RUN_DIR/$name.pid"
}

wait_http() {
    local url="$1" tries="${2:-120}"
    for _ in $(seq 1 "$tries"); do
        if "$PY" - "$url" <<'PY' 2>/dev/null; then return 0; fi
import sys, urllib.request
sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=2).status == 200 else 1)
PY
        sleep 0.5
    done
    return 1
}

start() {
    scripts/services.sh up

    # one fixed start date per checkout, so a second demo regenerates the same files
    if [ ! -f "$LOCAL_DIR/demo.env" ]; then
        printf 'DEMO_START=%s\n' "$(date -u -d "-${DEMO_DAYS} days" +%Y-%m-%d)" >"$LOCAL_DIR/demo.env"
    fi
    # shellcheck disable=SC1091
    . "$LOCAL_DIR/demo.env"

    local existing
    existing="$("$PY" - <<'PY'
import os, boto3
s3 = boto3.client("s3")
resp = s3.list_objects_v2(Bucket=os.environ["RAW_BUCKET"], Prefix=os.environ["RAW_PREFIX"], MaxKeys=1)
print(resp.get("KeyCount", 0))
PY
)"
    if [ "$existing" = "0" ]; then
        log "generating ${DEMO_DAYS} days of traffic from $DEMO_START (seed $DEMO_SEED) into s3://$RAW_BUCKET/$RAW_PREFIX"
        "$PY" -m generator --days "$DEMO_DAYS" --start "$DEMO_START" --seed "$DEMO_SEED" \
            ${DEMO_EVENTS:+--events "$DEMO_EVENTS"} --out "s3://$RAW_BUCKET/$RAW_PREFIX"
    else
        log "raw bucket already holds events: not generating"
    fi

    log "loading new raw files, then dbt build"
    "$PY" -m loader load --since "$DEMO_START"
    # make sure the marts exist even when nothing new was loaded
    if ! psql -X -q -tAc "select 1 from analytics.fact_events limit 1" >/dev/null 2>&1; then
        .venv/bin/dbt build --project-dir . --profiles-dir . --quiet
    fi

    start_bg ingest "$PY" -m ingest serve --port "$INGEST_PORT"
    start_bg dashboards "$PY" shiny/serve.py --port "$SHINY_PORT"
    start_bg etl-schedule "$PY" -m loader schedule --every "$ETL_EVERY_SECONDS"

    local dash="http://localhost:$SHINY_PORT/clickstream-analytics"
    if ! wait_http "$dash/"; then
        log "the dashboards did not answer at $dash; see $LOG_DIR/dashboards.log"
        tail -n 30 "$LOG_DIR/dashboards.log" >&2 || true
        exit 1
    fi
    if ! wait_http "http://localhost:$INGEST_PORT/" 20; then
        log "the storefront did not answer on port $INGEST_PORT; see $LOG_DIR/ingest.log"
        exit 1
    fi

    cat <<MSG

  Clickstream analytics is running.

  Dashboards:   $dash
  Storefront:   http://localhost:$INGEST_PORT/   (events go to POST http://localhost:$INGEST_PORT/events)
  Warehouse:    PGPASSWORD=$PGPASSWORD psql -h $PGHOST -p $PGPORT -U $PGUSER -d $PGDATABASE
                e.g.  SELECT event_name, COUNT(*) FROM fact_events GROUP BY event_name;
  ETL:          runs every $ETL_EVERY_SECONDS s in the background; run it now with: make etl
  Logs:         $LOG_DIR/
  Stop:         make down

MSG
}

stop() {
    stop_bg etl-schedule
    stop_bg dashboards
    stop_bg ingest
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
