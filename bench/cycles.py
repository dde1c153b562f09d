"""ETL cycle benchmark at a shop's density: does every 15-minute cycle cost what its new data
costs, whatever the history?

A shop at ``--rate`` events a day (default 1,000,000) with ``--days`` of history, then
``--cycles`` cycles of 15 minutes of its traffic. One generator stream covers the history and
the cycles and is split by received_at, so the cycles carry what a shop's traffic carries: late
events of earlier hours and dates, sessions that run across a cycle's edge, returning visitors
stitched to a user, resent (duplicate) and invalid events.

- The history is COPYd into raw.clickstream_events as hourly loads, then built with one full
  ``dbt build`` (timed).
- Each cycle's traffic is written to the local S3 endpoint as many small objects (one every
  ``--object-seconds`` of traffic, as Firehose buffers) plus one late file under an hour
  folder three hours back; then the product's ETL command runs exactly as the Lambda runs it
  (``python -m loader load``: list the window, load what is new, then ``dbt build``).

Per cycle it prints the seconds split into load and build (and the build's node times summed
by kind: models, tests), the slowest nodes, the rows written, and database bytes per event
(all schemas, indexes included, per schema).

    .venv/bin/python bench/cycles.py                              # 1 M/day, 1 day, 3 cycles
    .venv/bin/python bench/cycles.py --days 10 --keep-history     # 10 M events of history
    .venv/bin/python bench/cycles.py --rate 10000000 --days 1
    .venv/bin/python bench/cycles.py --days 10 --reuse-history    # cycles on a kept history

``--keep-history`` keeps the built history as a template database (and the cycles' traffic
under .local/bench-cycles/) so ``--reuse-history`` measures cycles again without rebuilding it.
Needs the local services (``make up``). Works in databases and a bucket of its own."""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import boto3  # noqa: E402
import orjson  # noqa: E402
import psycopg2  # noqa: E402
from databases import create_database, database_exists, drop_database, rename_database  # noqa: E402
from dbt_incremental import CsvRows  # noqa: E402

from generator import generate_events  # noqa: E402
from generator.simulate import MEAN_EVENTS_PER_SESSION  # noqa: E402
from loader.schema import migrate  # noqa: E402

CYCLE = timedelta(minutes=15)
WORK = ROOT / ".local" / "bench-cycles"
SCHEMAS = ("raw", "staging", "intermediate", "analytics")


def connect(dbname: str):
    return psycopg2.connect(dbname=dbname)  # libpq reads PGHOST, PGPORT, PGUSER, PGPASSWORD


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def received(event: dict) -> str:
    return str(event.get("received_at") or event.get("event_timestamp") or "")


# --- the traffic: one stream, split into the history and the cycles


def shop_stream(args, start: datetime, days: float, seed_offset: int = 0):
    """The shop's traffic from start for days: --rate events a day on average (sessions at
    rate / the generator's mean events per session), with the usual share of dirty events."""
    return generate_events(
        seed=args.seed + seed_offset,
        start=start,
        days=days,
        sessions_per_day=args.rate / MEAN_EVENTS_PER_SESSION,
        duplicate_share=0.01,
        invalid_share=0.005,
        late_share=0.01,
    )


def cycles_after(args, history_end: datetime, cycle_files: list[Path]) -> list[int]:
    """Write the cycles' traffic for a history kept without it: a stream of its own that starts
    six hours before the history's end (so late events and sessions that run into the cycles
    are there; its visitors are the shop's returning users and guests), cut to the cycles."""
    warm_up = timedelta(hours=6)
    span_days = (warm_up + CYCLE * args.cycles) / timedelta(days=1)
    edges = [stamp(history_end + CYCLE * (i + 1)) for i in range(args.cycles)]
    first_edge = stamp(history_end)
    outputs = [path.open("wb") for path in cycle_files]
    counts = [0] * args.cycles
    for event in shop_stream(args, history_end - warm_up, span_days, seed_offset=1):
        at = received(event)
        if not first_edge <= at < edges[-1]:
            continue
        index = next(i for i, edge in enumerate(edges) if at < edge)
        outputs[index].write(orjson.dumps(event) + b"\n")
        counts[index] += 1
    for output in outputs:
        output.close()
    return counts


def split_stream(args, history_end: datetime, cycle_files: list[Path]) -> tuple[int, dict]:
    """Generate the whole stream; COPY the history part into the history database as hourly
    loads; write each cycle's part to its NDJSON file. Returns (history events, per-cycle counts)."""
    history_start = history_end - timedelta(days=args.days)
    span_days = args.days + args.cycles * CYCLE / timedelta(days=1)
    # a session rate, not an exact count: an exact count ends the stream wherever it is reached
    # (a campaign day makes it early), and the cycles would get nothing
    stream = shop_stream(args, history_start, span_days)
    edges = [stamp(history_end + CYCLE * (i + 1)) for i in range(args.cycles)]
    history_edge = stamp(history_end)
    outputs = [path.open("wb") for path in cycle_files]
    counts = [0] * args.cycles
    history = {"events": 0}

    def history_rows():
        line, current, key, loaded_at = 0, None, None, None
        load_id = str(uuid.uuid4())
        for event in stream:
            at = received(event)
            if at >= history_edge:
                route_to_cycle(event, at)
                break
            hour = at[:13]
            if hour != current:
                current, line = hour, 0
                hour_end = datetime.fromisoformat(hour + ":00:00+00:00") + timedelta(hours=1)
                # the hourly loader's stamp, never after the history's end (the cycles load later)
                loaded_at = min(hour_end + timedelta(minutes=5), history_end)
                key = f"events/{hour_end - timedelta(hours=1):%Y/%m/%d/%H}/history.json"
            line += 1
            history["events"] += 1
            yield [
                orjson.dumps(event).decode(),
                "bench-history",
                key,
                line,
                "etag",
                load_id,
                loaded_at.isoformat(),
            ]

    def route_to_cycle(event: dict, at: str) -> None:
        for index, edge in enumerate(edges):
            if at < edge:
                outputs[index].write(orjson.dumps(event) + b"\n")
                counts[index] += 1
                return

    conn = connect(args.history_db)
    with conn.cursor() as cur:
        cur.copy_expert(
            "copy raw.clickstream_events"
            " (payload, bucket, object_key, line_number, object_etag, load_id, loaded_at)"
            " from stdin with (format csv)",
            io.BufferedReader(CsvRows(history_rows()), buffer_size=1 << 20),
        )
    conn.commit()
    for event in stream:  # the rest of the stream: the cycles
        at = received(event)
        if at >= edges[-1]:
            continue  # received after the last cycle (late events of its sessions)
        route_to_cycle(event, at)
    for output in outputs:
        output.close()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("analyze raw.clickstream_events")
    conn.close()
    return history["events"], counts


# --- dbt, the loader


def dbt_env(dbname: str, work: Path) -> dict:
    env = dict(
        os.environ, PGDATABASE=dbname, DBT_TARGET_PATH=str(work / "target"), DBT_LOG_PATH=str(work / "logs")
    )
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    return env


def run_results(work: Path) -> list[dict]:
    path = work / "target" / "run_results.json"
    return json.loads(path.read_text())["results"] if path.exists() else []


def node_name(unique_id: str) -> str:
    """model.project.fact_events -> fact_events; a generic test's name without its hash"""
    parts = unique_id.split(".")
    return parts[2] if parts[0] == "test" and len(parts) > 3 else parts[-1]


def node_figures(results: list[dict], top: int) -> dict:
    by_kind: dict[str, float] = {}
    rows = 0
    for result in results:
        kind = result["unique_id"].split(".")[0]
        by_kind[kind] = by_kind.get(kind, 0.0) + float(result["execution_time"] or 0)
        affected = (result.get("adapter_response") or {}).get("rows_affected")
        if kind == "model" and isinstance(affected, int) and affected > 0:
            rows += affected
    slowest = sorted(results, key=lambda r: -float(r["execution_time"] or 0))[:top]
    failed = [r["unique_id"] for r in results if r["status"] in ("error", "fail")]
    return {
        "by_kind": by_kind,
        "rows_written": rows,
        "slowest": [(node_name(r["unique_id"]), float(r["execution_time"] or 0)) for r in slowest],
        "failed": failed,
    }


def full_build(dbname: str, work: Path) -> float:
    started = time.monotonic()
    result = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "dbt"),
            "build",
            "--project-dir",
            str(ROOT),
            "--profiles-dir",
            str(ROOT),
        ],
        env=dbt_env(dbname, work),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(f"full dbt build failed on {dbname}:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}")
    return time.monotonic() - started


def upload_cycle(s3, bucket: str, cycle_file: Path, cycle: int, object_seconds: float) -> int:
    """The cycle's events as objects of `object_seconds` of traffic each (keys by the received
    hour of their first event), and its first object under an hour folder three hours back
    (a late file). Returns the number of objects."""
    objects: list[tuple[str, list[bytes]]] = []
    current_slot = None
    for line in cycle_file.read_bytes().splitlines():
        at = datetime.fromisoformat(received(orjson.loads(line)).replace("Z", "+00:00"))
        slot = int(at.timestamp() // object_seconds)
        if slot != current_slot:
            current_slot = slot
            objects.append((f"events/{at:%Y/%m/%d/%H}/bench-c{cycle}-{len(objects):04d}.json", []))
        objects[-1][1].append(line)
    if objects:
        key, lines = objects[0]
        late_hour = datetime.strptime(key[7:20], "%Y/%m/%d/%H").replace(tzinfo=UTC) - timedelta(hours=3)
        objects[0] = (f"events/{late_hour:%Y/%m/%d/%H}/bench-c{cycle}-late.json", lines)
    for key, lines in objects:
        s3.put_object(Bucket=bucket, Key=key, Body=b"\n".join(lines) + b"\n")
    return len(objects)


def loader_command(argv: list[str], env: dict) -> tuple[float, dict, subprocess.CompletedProcess]:
    """``python -m loader <argv>`` (with --json) as the product runs it: (seconds, the JSON
    summary it prints last, the finished process)."""
    started = time.monotonic()
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-m", "loader", *argv],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    wall = time.monotonic() - started
    try:
        summary = json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        sys.exit(
            f"python -m loader {argv[0]} printed no summary (exit {result.returncode}):\n{result.stderr[-4000:]}"
        )
    return wall, summary, result


def run_cycle(dbname: str, bucket: str, work: Path, lookback_hours: float) -> dict:
    env = dbt_env(dbname, work)
    env.update(RAW_BUCKET=bucket, RAW_PREFIX="events/", LOADER_LOOKBACK_HOURS=f"{lookback_hours:g}")
    wall, summary, result = loader_command(["load", "--json"], env)
    with connect(dbname) as conn, conn.cursor() as cur:
        cur.execute(
            "select extract(epoch from coalesce(dbt_started_at, finished_at) - started_at),"
            " extract(epoch from dbt_finished_at - dbt_started_at)"
            " from raw.load_runs where load_id = %s",
            (summary["load_id"],),
        )
        load_seconds, build_seconds = cur.fetchone()
    return {
        "wall": wall,
        "load": float(load_seconds or 0),
        "build": float(build_seconds or 0),
        "summary": summary,
        "exit": result.returncode,
    }


def record_history_build(dbname: str) -> None:
    """The history's full build as the loader records a build that succeeded (raw.load_runs),
    as on a deployment whose history the ETL built: the first cycle's tests start from it
    rather than reading the whole history."""
    with connect(dbname) as conn, conn.cursor() as cur:
        cur.execute("select exists (select 1 from raw.load_runs where dbt_status = 'success')")
        if not cur.fetchone()[0]:
            cur.execute(
                "insert into raw.load_runs (load_id, started_at, finished_at, status, dbt_status,"
                " dbt_started_at, dbt_finished_at)"
                " select gen_random_uuid(), min(dbt_updated_at), max(dbt_updated_at), 'succeeded', 'success',"
                " min(dbt_updated_at), max(dbt_updated_at) from analytics.fact_events"
            )


def storage(dbname: str) -> dict:
    with connect(dbname) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from raw.clickstream_events")
        raw_lines = cur.fetchone()[0]
        cur.execute(
            "select n.nspname, sum(pg_total_relation_size(c.oid))"
            " from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
            " where c.relkind in ('r', 'm', 'p') and not c.relispartition"
            "   and n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')"
            " group by 1"
        )
        per_schema = {name: int(size) for name, size in cur.fetchall()}
        # partitioned tables: their partitions' sizes
        cur.execute(
            "select n.nspname, sum(pg_total_relation_size(c.oid))"
            " from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
            " where c.relispartition group by 1"
        )
        for name, size in cur.fetchall():
            per_schema[name] = per_schema.get(name, 0) + int(size)
        cur.execute("select pg_database_size(current_database())")
        database = cur.fetchone()[0]
    return {"raw_lines": raw_lines, "per_schema": per_schema, "database": database}


def print_storage(label: str, figures: dict) -> None:
    lines = max(1, figures["raw_lines"])
    parts = ", ".join(
        f"{name} {size / lines:,.0f}"
        for name, size in sorted(figures["per_schema"].items(), key=lambda i: -i[1])
    )
    print(
        f"  {label}: database {figures['database'] / 1e9:.2f} GB = {figures['database'] / lines:,.0f} bytes"
        f" per raw event ({figures['raw_lines']:,} lines); by schema (bytes/event): {parts}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1_000_000, help="events a day (default 1,000,000)")
    parser.add_argument("--days", type=float, default=1, help="days of history (default 1)")
    parser.add_argument("--cycles", type=int, default=3, help="15-minute cycles (default 3)")
    parser.add_argument("--object-seconds", type=float, default=20, help="seconds of traffic per object")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--top", type=int, default=5, help="slowest nodes shown per cycle")
    parser.add_argument(
        "--cycle-hour",
        type=int,
        default=20,
        help="UTC hour the cycles start at (the generator's daily profile: 05:00 has a tenth of an"
        " evening's traffic); the newest such hour before now; -1: now",
    )
    parser.add_argument("--keep-history", action="store_true", help="keep the built history as a template")
    parser.add_argument("--reuse-history", action="store_true", help="start from a kept history")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = parser.parse_args()
    name = f"bench_cycles_{args.rate}_{args.days:g}d_{args.seed}".replace(".", "_")
    args.history_db = f"{name}_history"
    history_dir = WORK / name
    cycle_files = [history_dir / f"cycle-{i}.ndjson" for i in range(args.cycles)]
    meta_path = history_dir / "history.json"
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()};"
        f" {args.rate:,} events/day, {args.days:g} days of history, {args.cycles} cycles of 15 minutes"
        f" ({args.rate / 96:,.0f} events each), one object per {args.object_seconds:g} s of traffic",
        flush=True,
    )
    reuse = args.reuse_history and meta_path.exists() and database_exists(args.history_db)
    if args.reuse_history and not reuse:
        # never rebuild a history by surprise (10 days of 1 M/day: about 70 minutes here)
        raise SystemExit(f"--reuse-history: no kept history {args.history_db} (run once with --keep-history)")
    if reuse:
        meta = json.loads(meta_path.read_text())
        print(f"history: reused {args.history_db} ({meta['history_events']:,} events)", flush=True)
        # more cycles than the history was kept with: their traffic is generated after it
        fewer_kept = meta.get("cycles", 0) < args.cycles
        if fewer_kept or not all(
            path.exists() and path.stat().st_size for path in cycle_files[: args.cycles]
        ):
            counts = cycles_after(args, datetime.fromisoformat(meta["history_end"]), cycle_files)
            print(f"cycles' traffic generated after the kept history: {counts} events", flush=True)
    else:
        history_dir.mkdir(parents=True, exist_ok=True)
        # the record of a kept history goes first: a build killed from here on leaves none, so
        # --reuse-history never takes a half-built history for a kept one
        meta_path.unlink(missing_ok=True)
        drop_database(args.history_db)
        create_database(args.history_db)
        conn = connect(args.history_db)
        migrate(conn)
        conn.close()
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        history_end = now - CYCLE * args.cycles
        if args.cycle_hour >= 0:
            # the cycles at the same hour of the day whenever the benchmark runs (within the
            # loader's 48-hour lookback: the newest such hour)
            at_hour = history_end.replace(hour=args.cycle_hour, minute=0)
            history_end = at_hour if at_hour <= history_end else at_hour - timedelta(days=1)
        started = time.monotonic()
        history_events, counts = split_stream(args, history_end, cycle_files)
        copy_seconds = time.monotonic() - started
        work = history_dir / "dbt-history"
        build_seconds = full_build(args.history_db, work)
        figures = node_figures(run_results(work), args.top)
        meta = {
            "history_events": history_events,
            "history_end": history_end.isoformat(),
            "cycle_events": counts,
            "cycles": args.cycles,
            "generate_and_copy_seconds": copy_seconds,
            "full_build_seconds": build_seconds,
            "full_build_by_kind": figures["by_kind"],
            "full_build_slowest": figures["slowest"],
        }
        meta_path.write_text(json.dumps(meta, indent=1))
        print(
            f"history: {history_events:,} events generated and COPYd in {copy_seconds:.1f} s;"
            f" full dbt build {build_seconds:.1f} s (node seconds: "
            + ", ".join(f"{kind} {seconds:.1f}" for kind, seconds in figures["by_kind"].items())
            + "); slowest: "
            + ", ".join(f"{node} {seconds:.1f}" for node, seconds in figures["slowest"]),
            flush=True,
        )
        print_storage("after the full build", storage(args.history_db))

    dbname = f"{name}_run_{uuid.uuid4().hex[:6]}"
    if args.keep_history or reuse:
        create_database(dbname, template=args.history_db)
    else:
        rename_database(args.history_db, dbname)
    record_history_build(dbname)
    bucket = f"bench-cycles-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
    s3.create_bucket(Bucket=bucket)
    history_end = datetime.fromisoformat(meta["history_end"])
    try:
        totals = []
        for cycle in range(args.cycles):
            objects = upload_cycle(s3, bucket, cycle_files[cycle], cycle, args.object_seconds)
            # the Lambda's window (48 hours back from now), widened if the kept traffic is older
            age_hours = (datetime.now(UTC) - history_end).total_seconds() / 3600
            work = WORK / name / f"dbt-cycle-{cycle}"
            outcome = run_cycle(dbname, bucket, work, max(48.0, age_hours + 6))
            figures = node_figures(run_results(work), args.top)
            summary = outcome["summary"]
            totals.append(outcome["wall"])
            kinds = ", ".join(f"{kind} {seconds:.1f}" for kind, seconds in sorted(figures["by_kind"].items()))
            print(
                f"cycle {cycle + 1}: {outcome['wall']:.1f} s in all (load {outcome['load']:.1f} s, dbt build"
                f" {outcome['build']:.1f} s; node seconds summed: {kinds}); {objects} objects,"
                f" {summary['events']:,} events, {summary['rejects']} rejected lines; status {summary['status']},"
                f" dbt {summary.get('dbt_status')}; {figures['rows_written']:,} rows written",
                flush=True,
            )
            print("  slowest: " + ", ".join(f"{node} {seconds:.2f}" for node, seconds in figures["slowest"]))
            if figures["failed"] or summary["status"] != "succeeded":
                print("  FAILED: " + ", ".join(figures["failed"]) + f"; {summary.get('error')}"[:2000])
            print_storage("storage", storage(dbname))
        totals.sort()
        print(
            f"cycles: median {totals[len(totals) // 2]:.1f} s, max {totals[-1]:.1f} s"
            f" ({args.rate:,}/day, {args.days:g} days of history; target <= 60 s at 1 M/day)",
            flush=True,
        )
    finally:
        objects = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        for item in objects:
            s3.delete_object(Bucket=bucket, Key=item["Key"])
        s3.delete_bucket(Bucket=bucket)
        if not args.keep:
            drop_database(dbname)


if __name__ == "__main__":
    main()
