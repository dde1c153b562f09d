"""Erasure benchmark at a shop's density: how long does ``python -m loader forget`` take on a
warehouse of ``--days`` of a shop at ``--rate`` events a day, and where do the seconds go?

It works on a copy of the history bench/cycles.py keeps (``--keep-history``; built here through
bench/cycles.py when there is none, about 5 minutes for the default day of 1 M events):

- the person is the user with the most events (their anonymous ids stitched to them);
- ``python -m loader forget --user-id <them> --json`` runs as the runbook says (the product's
  command), timed; its steps are read from its log lines: removing the rows (one transaction),
  rewriting the objects (the history was COPYd, so its objects are gone from the bucket: each
  is one GET), and the recount (a ``dbt build --full-refresh`` of what counted the person),
  whose models are listed with their seconds;
- then the same request again, which must change nothing (``already``).

``--rejected-objects N`` first writes N objects under the bucket's ``rejected/`` (what the ingest
endpoint refused, in its record format: ``RejectedRetentionDays`` of a shop's refusals), one in
100 holding a record of the person's: forget reads every one of them (the scan) and rewrites those.

    .venv/bin/python bench/forget.py                        # 1 M/day, 1 day of history
    .venv/bin/python bench/forget.py --days 10              # on bench/cycles.py's 10-day history
    .venv/bin/python bench/forget.py --db <a database bench/cycles.py --keep kept>
    .venv/bin/python bench/forget.py --rejected-objects 30000   # and a month of ingest refusals

Needs the local services (``make up``). Works in a database of its own, dropped at the end
unless --keep."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import boto3  # noqa: E402
from cycles import WORK, connect, loader_command, node_name, run_results  # noqa: E402
from databases import create_database, database_exists, drop_database  # noqa: E402

HISTORY_BUCKET = "bench-history"  # the bucket bench/cycles.py's COPYd history lines name
LOG_LINE = re.compile(r"^(\d\d:\d\d:\d\d) \w+\s+(.*)$")


def build_history(args) -> None:
    print("no kept history: building it with bench/cycles.py --keep-history", flush=True)
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "cycles.py"),
            "--rate",
            str(args.rate),
            "--days",
            f"{args.days:g}",
            "--seed",
            str(args.seed),
            "--cycles",
            "1",
            "--keep-history",
        ],
        check=True,
    )


def the_person(dbname: str) -> tuple[str, dict]:
    """The user with the most events, and what the warehouse holds of them."""
    with connect(dbname) as conn, conn.cursor() as cur:
        cur.execute(
            "select user_id, count(*) from analytics.fact_events where user_id is not null"
            " group by 1 order by 2 desc, 1 limit 1"
        )
        found = cur.fetchone()
        if found is None:
            sys.exit(f"{dbname} holds no identified user")
        user_id, events = found
        cur.execute(
            "select count(distinct session_id), count(distinct anonymous_id)"
            " from analytics.fact_events where user_key = %s",
            (user_id,),
        )
        sessions, anonymous_ids = cur.fetchone()
        cur.execute("select count(*) from raw.clickstream_events")
        raw_lines = cur.fetchone()[0]
    return user_id, {
        "events": events,
        "sessions": sessions,
        "anonymous_ids": anonymous_ids,
        "raw_lines": raw_lines,
    }


def put_rejected(s3, count: int, anonymous_ids: list[str]) -> int:
    """``count`` objects under rejected/ as the ingest endpoint writes them (one per request that
    had a refusal: one to three records of index, reason, the event as sent, received_at,
    request_id), over 30 days of hours; every 100th holds a record of one of ``anonymous_ids``.
    The number of those."""

    def record(n: int, anonymous_id: str) -> dict:
        return {
            "index": n % 3,
            "reason": "event_name: must be snake_case",
            "event": {
                "event_id": str(uuid.uuid4()),
                "event_name": "Not Snake Case",
                "anonymous_id": anonymous_id,
                "session_id": f"s-{uuid.uuid4().hex[:12]}",
                "page": {"url": "https://shop.example/p/1", "path": "/p/1"},
            },
            "received_at": "2026-11-15T10:00:00.000Z",
            "request_id": uuid.uuid4().hex,
        }

    def put(n: int) -> bool:
        theirs = n % 100 == 0 and bool(anonymous_ids)
        ids = [f"anon-{uuid.uuid4().hex[:16]}" for _ in range(1 + n % 3)]
        if theirs:
            ids[0] = anonymous_ids[n // 100 % len(anonymous_ids)]
        body = b"".join(json.dumps(record(i, a)).encode() + b"\n" for i, a in enumerate(ids))
        day, hour = 1 + n % 30, n // 30 % 24
        key = f"rejected/2026/11/{day:02}/{hour:02}/{n:07}-{uuid.uuid4().hex}.json"
        s3.put_object(Bucket=HISTORY_BUCKET, Key=key, Body=body)
        return theirs

    with ThreadPoolExecutor(max_workers=32) as pool:
        return sum(pool.map(put, range(count)))


def anonymous_ids_of(dbname: str, user_id: str) -> list[str]:
    with connect(dbname) as conn, conn.cursor() as cur:
        cur.execute(
            "select distinct anonymous_id from analytics.fact_events where user_key = %s order by 1",
            (user_id,),
        )
        return [row[0] for row in cur.fetchall()]


def run_forget(dbname: str, user_id: str, work: Path, bucket: str = HISTORY_BUCKET) -> dict:
    env = dict(
        os.environ,
        PGDATABASE=dbname,
        DBT_TARGET_PATH=str(work / "target"),
        DBT_LOG_PATH=str(work / "logs"),
        RAW_BUCKET=bucket,
        RAW_PREFIX="events/",
    )
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    wall, summary, result = loader_command(["forget", "--user-id", user_id, "--json"], env)
    steps = steps_of(result.stderr)
    # the rows' step: from the command's start (its log names no start) to the first object
    steps["rows"] = max(0.0, wall - steps.get("objects", 0) - steps.get("recount", 0))
    return {"wall": wall, "summary": summary, "steps": steps, "exit": result.returncode}


def report(run: dict, label: str) -> None:
    summary, steps = run["summary"], run["steps"]
    removed = sum(summary.get("tables", {}).values())
    print(
        f"{label}: {summary['status']} in {run['wall']:.1f} s (exit {run['exit']}): rows"
        f" {steps.get('rows', 0):.1f} s ({removed:,} rows from {len(summary.get('tables', {}))} tables),"
        f" objects {steps.get('objects', 0):.1f} s ({len(summary.get('objects', []))} objects,"
        f" {summary.get('objects_left', 0)} left), recount {steps.get('recount', 0):.1f} s"
        f" ({summary.get('models_rebuilt', 0)} models, {summary.get('rebuild')})",
        flush=True,
    )
    print(
        f"  rejected/: {summary.get('rejected_scanned', 0):,} objects read in"
        f" {summary.get('rejected_scan_seconds', 0):.1f} s,"
        f" {sum(o['object_key'].startswith('rejected/') for o in summary.get('objects', []))} rewritten",
        flush=True,
    )


def steps_of(log_text: str) -> dict:
    """Seconds of the objects' step (the first object to the recount's start) and of the recount
    (to the last line), from the loader's log lines (``HH:MM:SS LEVEL message`` on stderr).
    Whole seconds: the log's precision."""
    marks: list[tuple[str, float]] = []
    for line in log_text.splitlines():
        found = LOG_LINE.match(line)
        if not found:
            continue
        hours, minutes, seconds = (int(part) for part in found.group(1).split(":"))
        at = hours * 3600 + minutes * 60 + seconds
        if marks and at < marks[0][1]:
            at += 86400  # past midnight
        message = found.group(2)
        if message.startswith("Recounting the aggregates"):
            marks.append(("recount", at))
        elif message.startswith(("Rewrote ", "Cannot rewrite", "Rewriting ")):
            marks.append(("objects", at))
        else:
            marks.append(("other", at))
    if not marks:
        return {}
    last = marks[-1][1]
    recount_at = next((at for name, at in marks if name == "recount"), last)
    objects_at = next((at for name, at in marks if name == "objects"), recount_at)
    return {"objects": float(recount_at - objects_at), "recount": float(last - recount_at)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1_000_000, help="events a day (default 1,000,000)")
    parser.add_argument("--days", type=float, default=1, help="days of history (default 1)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--top", type=int, default=12, help="recounted models shown")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument(
        "--rejected-objects", type=int, default=0, help="objects of ingest refusals under rejected/ first"
    )
    parser.add_argument(
        "--db",
        help="erase in this database itself (one bench/cycles.py --keep kept; it is changed, never dropped)",
    )
    args = parser.parse_args()
    name = f"bench_cycles_{args.rate}_{args.days:g}d_{args.seed}".replace(".", "_")
    history_db = f"{name}_history"
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, python"
        f" {platform.python_version()}; forget on {args.days:g} days of {args.rate:,} events/day",
        flush=True,
    )
    if args.db:
        if not database_exists(args.db):
            sys.exit(f"--db: no database {args.db}")
        dbname = args.db
        print(f"warehouse: {dbname} itself", flush=True)
    else:
        if not database_exists(history_db):
            build_history(args)
        dbname = f"bench_forget_{uuid.uuid4().hex[:6]}"
        started = time.monotonic()
        create_database(dbname, template=history_db)
        print(f"warehouse: a copy of {history_db} in {time.monotonic() - started:.1f} s", flush=True)
    s3 = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
    try:
        s3.create_bucket(Bucket=HISTORY_BUCKET)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    work = WORK / "forget" / dbname
    try:
        user_id, held = the_person(dbname)
        print(
            f"person: the user with the most events: {held['events']:,} events in {held['sessions']:,}"
            f" sessions, {held['anonymous_ids']} anonymous ids (of {held['raw_lines']:,} raw lines)",
            flush=True,
        )
        if args.rejected_objects:
            started = time.monotonic()
            theirs = put_rejected(s3, args.rejected_objects, anonymous_ids_of(dbname, user_id))
            print(
                f"rejected/: {args.rejected_objects:,} objects written ({theirs} with a record of the"
                f" person's) in {time.monotonic() - started:.1f} s",
                flush=True,
            )
        run = run_forget(dbname, user_id, work)
        report(run, "forget")
        # the person's lines also came in objects of the cycles' buckets (gone since): forget
        # takes one bucket a run, so each further run with one of those as its source goes on
        # from where the one before stopped, as the runbook says
        while run["summary"]["status"] == "incomplete":
            with connect(dbname) as conn, conn.cursor() as cur:
                cur.execute(
                    "select distinct bucket from raw.erasure_objects where status = 'pending' order by 1"
                )
                pending = [row[0] for row in cur.fetchall()]
            if not pending:
                break
            for bucket in pending:
                try:
                    s3.create_bucket(Bucket=bucket)
                except s3.exceptions.BucketAlreadyOwnedByYou:
                    pass
                run = run_forget(dbname, user_id, work / bucket, bucket)
                report(run, f"forget again with the source s3://{bucket}/events/")
                work = work / bucket
        summary = run["summary"]
        results = [r for r in run_results(work) if r["unique_id"].startswith("model.")]
        slowest = sorted(results, key=lambda r: -float(r["execution_time"] or 0))[: args.top]
        print(
            "  recounted models (s): "
            + ", ".join(
                f"{node_name(r['unique_id'])} {float(r['execution_time'] or 0):.1f}" for r in slowest
            ),
            flush=True,
        )
        again = run_forget(dbname, user_id, work / "again")
        print(
            f"forget again: {again['summary']['status']} in {again['wall']:.1f} s (rejected/:"
            f" {again['summary'].get('rejected_scanned', 0):,} objects read again, those written in the"
            f" 15 minutes before the first scan, in {again['summary'].get('rejected_scan_seconds', 0):.1f} s)",
            flush=True,
        )
        if summary["status"] != "erased" or again["summary"]["status"] != "already":
            sys.exit("forget did not erase the person, or a second run changed something")
    finally:
        if args.rejected_objects:
            for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=HISTORY_BUCKET, Prefix="rejected/"
            ):
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if keys:
                    s3.delete_objects(Bucket=HISTORY_BUCKET, Delete={"Objects": keys, "Quiet": True})
        if args.db:
            pass
        elif not args.keep:
            drop_database(dbname)
        else:
            print(f"kept database {dbname}", flush=True)


if __name__ == "__main__":
    main()
