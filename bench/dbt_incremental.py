"""Warehouse benchmark: does an incremental dbt run that adds one new hour of events cost
about the same whether the warehouse already holds a small or a large history?

For each size it makes a fresh database, generates the history with the traffic generator,
COPYs it into raw.clickstream_events as hourly loads (loaded_at = end of the received hour +
5 min, as the hourly loader would), times a full `dbt run`, then loads one more hour of
events and times the incremental `dbt run`. Prints the figures and the ratio (goal <= 1.5x).

Like for like: both histories have the same daily event density (that of the small history,
--small events over --days days); the large one is longer, not denser (--events / density
days). The new hour has the same density too (events per day / 24), so "recompute the touched
hour / day" costs the same at both sizes and only the history's length differs.

    .venv/bin/python bench/dbt_incremental.py                       # 100k and 10M events
    .venv/bin/python bench/dbt_incremental.py --events 2000000      # a smaller large size
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from databases import create_database, drop_database  # noqa: E402

from generator import generate_events  # noqa: E402
from loader.schema import migrate  # noqa: E402

START = datetime(2026, 1, 1, tzinfo=UTC)


def connect(dbname: str):
    return psycopg2.connect(dbname=dbname)  # libpq reads PGHOST, PGPORT, PGUSER, PGPASSWORD


class CsvRows(io.RawIOBase):
    """A file-like view of raw rows as CSV, for COPY ... FROM STDIN without a temp file."""

    def __init__(self, rows: Iterator[list]):
        self.rows = rows
        self.buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while len(self.buffer) < len(target):
            try:
                row = next(self.rows)
            except StopIteration:
                break
            out = io.StringIO()
            csv.writer(out, lineterminator="\n").writerow(row)
            self.buffer += out.getvalue().encode()
        size = min(len(target), len(self.buffer))
        target[:size] = self.buffer[:size]
        self.buffer = self.buffer[size:]
        return size


def raw_rows(events: Iterator[dict], load_id: str) -> Iterator[list]:
    """One raw row per event, one object per received hour, loaded 5 minutes after it."""
    line = 0
    current = None
    for event in events:
        hour = str(event.get("received_at"))[:13]
        if hour != current:
            current, line = hour, 0
            loaded_at = datetime.fromisoformat(hour + ":00:00+00:00") + timedelta(hours=1, minutes=5)
            key = f"events/{loaded_at:%Y/%m/%d/%H}/bench.json"
        line += 1
        yield [json.dumps(event), "bench", key, line, "etag", load_id, loaded_at.isoformat()]


def copy_events(dbname: str, events: Iterator[dict]) -> float:
    started = time.monotonic()
    conn = connect(dbname)
    with conn.cursor() as cur:
        cur.copy_expert(
            "copy raw.clickstream_events"
            " (payload, bucket, object_key, line_number, object_etag, load_id, loaded_at)"
            " from stdin with (format csv)",
            io.BufferedReader(CsvRows(raw_rows(events, str(uuid.uuid4()))), buffer_size=1 << 20),
        )
    conn.commit()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("analyze raw.clickstream_events")
    conn.close()
    return time.monotonic() - started


def dbt_work(dbname: str) -> Path:
    return ROOT / ".local" / "bench-dbt" / dbname


def slowest_models(dbname: str, top: int = 5) -> list[tuple[str, float]]:
    """The models that took longest in the last dbt run on `dbname` (from run_results.json)."""
    results = json.loads((dbt_work(dbname) / "target" / "run_results.json").read_text())["results"]
    timed = [(r["unique_id"].split(".")[-1], float(r["execution_time"])) for r in results]
    return sorted(timed, key=lambda item: -item[1])[:top]


def dbt_run(dbname: str, *args: str) -> float:
    work = dbt_work(dbname)
    env = dict(
        os.environ, PGDATABASE=dbname, DBT_TARGET_PATH=str(work / "target"), DBT_LOG_PATH=str(work / "logs")
    )
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    started = time.monotonic()
    result = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "dbt"),
            "run",
            "--project-dir",
            str(ROOT),
            "--profiles-dir",
            str(ROOT),
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"dbt run failed on {dbname}:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}")
    return elapsed


def one_size(events: int, days: float, hour_events: int, hours: int, seed: int, keep: bool) -> dict:
    """History of `events` over `days` days, then `hours` more hours of `hour_events` events
    each, one incremental run after each hour; the median of those runs counts."""
    dbname = f"bench_dbt_{events}_{uuid.uuid4().hex[:6]}"
    create_database(dbname)
    try:
        conn = connect(dbname)
        migrate(conn)
        conn.close()
        history = generate_events(seed=seed, start=START, days=days, events=events, duplicate_share=0.01,
                                  invalid_share=0.005, late_share=0.01)  # fmt: skip
        load_seconds = copy_events(dbname, history)
        full_seconds = dbt_run(dbname)
        incremental_runs = []
        for hour in range(hours):
            new_hour = generate_events(
                seed=seed + 1 + hour,
                start=START + timedelta(days=days, hours=hour),
                days=1 / 24,
                events=hour_events,
            )
            copy_events(dbname, new_hour)
            incremental_runs.append(dbt_run(dbname))
        with connect(dbname) as conn, conn.cursor() as cur:
            cur.execute("select count(*) from analytics.fact_events")
            fact_rows = cur.fetchone()[0]
            cur.execute("select pg_database_size(current_database())")
            size_bytes = cur.fetchone()[0]
        return {
            "events": events,
            "load_seconds": load_seconds,
            "full_run_seconds": full_seconds,
            "incremental_run_seconds": statistics.median(incremental_runs),
            "incremental_runs": incremental_runs,
            "slowest_models": slowest_models(dbname),
            "fact_events_rows": fact_rows,
            "database_gb": size_bytes / 1e9,
        }
    finally:
        if not keep:
            drop_database(dbname)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="events of the large history")
    parser.add_argument("--small", type=int, default=100_000, help="events of the small history")
    parser.add_argument("--days", type=float, default=30, help="days the small history spans")
    parser.add_argument(
        "--hour-events",
        type=int,
        help="events of the new hour (default: small/(days*24), the histories' density)",
    )
    parser.add_argument("--hours", type=int, default=3, help="new hours, one incremental run each")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark databases")
    args = parser.parse_args()
    per_day = args.small / args.days
    hour_events = args.hour_events or max(1, round(per_day / 24))
    spans = {args.small: args.days, args.events: args.events / per_day}

    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
    )
    print(
        f"same density: {per_day:,.0f} events/day; histories span "
        f"{spans[args.small]:g} and {spans[args.events]:g} days; new hour: {hour_events} events; "
        "dbt run (models only)"
    )
    results = []
    for size in (args.small, args.events):
        result = one_size(size, spans[size], hour_events, args.hours, args.seed, args.keep)
        results.append(result)
        print(
            f"history {size:>11,} events ({spans[size]:g} days): load {result['load_seconds']:7.1f} s, "
            f"full dbt run {result['full_run_seconds']:7.1f} s, "
            f"incremental dbt run (+1 hour, median of {args.hours}) {result['incremental_run_seconds']:6.1f} s, "
            f"fact_events {result['fact_events_rows']:,} rows, database {result['database_gb']:.2f} GB",
            flush=True,
        )
        runs = ", ".join(f"{seconds:.1f}" for seconds in result["incremental_runs"])
        models = ", ".join(f"{name} {seconds:.2f}" for name, seconds in result["slowest_models"])
        print(f"    incremental runs (s): {runs}; slowest models in the last one (s): {models}", flush=True)
    small, large = results
    ratio = large["incremental_run_seconds"] / small["incremental_run_seconds"]
    print(f"full dbt run at {args.events:,} events: {large['full_run_seconds']:.1f} s")
    print(
        f"incremental run: {small['incremental_run_seconds']:.1f} s at {args.small:,}, "
        f"{large['incremental_run_seconds']:.1f} s at {args.events:,}: ratio {ratio:.2f}x (goal <= 1.5x)"
    )


if __name__ == "__main__":
    main()
