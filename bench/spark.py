"""Spark benchmark: the full build at 1 million events on Spark (local mode, Iceberg) against
PostgreSQL (loader + dbt build), Spark on one core against two, and one incremental hour on
both engines.

    .venv/bin/python bench/spark.py [--events 1000000] [--days 2] [--local1-events N]
                                    [--skip-pg] [--skip-local1] [--skip-publish]
                                    [--skip-incremental] [--keep]

The generator writes --events events (seed 42, --days days from 2026-01-01, one NDJSON object
per hour) into a directory laid out like the bucket, under .local/bench-spark-<id>/. Then, one
run each, sequentially:

- PostgreSQL full: a fresh database, ``python -m loader load --source DIR --no-build``, then
  ``dbt build`` (each timed);
- Spark local[2] full: ``python -m spark build --raw DIR --no-publish`` (SPARK_MASTER=local[2],
  a fresh Iceberg warehouse), then ``python -m spark publish`` into a fresh database, timed
  on its own;
- one incremental hour: one more hour of generated events (seed 43, the hour after the
  others), then the loader + ``dbt build`` on the PostgreSQL database and ``spark build
  --no-publish`` on the local[2] warehouse;
- Spark local[1] full, last (the slowest): the first build again (same window, so without the
  new hour) with SPARK_MASTER=local[1] in a fresh warehouse (at --local1-events events if
  given, in which case local[2] is run again at that size for the ratio).

Seconds are wall-clock of the whole process (JVM start-up included for Spark). Peak RSS: for
Spark the largest sum of PSS (RSS with shared pages split between the processes sharing them)
over the process tree (driver python, the JVM, pyspark's python workers) sampled every 0.5 s,
and the JVM's own RSS; for PostgreSQL-side commands the client process's VmHWM (the server's
memory is not counted). Needs the local services (``make up``) and the Spark venv and jars
(``make spark-venv spark-jars``). Databases and directories are removed at the end unless
--keep."""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import psycopg2  # noqa: E402
from databases import create_database, drop_database, server_version  # noqa: E402

PY = str(ROOT / ".venv" / "bin" / "python")
DBT = str(ROOT / ".venv" / "bin" / "dbt")
SPARK_PY = str(ROOT / ".venv-spark" / "bin" / "python")
START = datetime(2026, 1, 1, tzinfo=UTC)


# ---------------------------------------------------------------- databases


def scalar(db: str, sql: str):
    conn = psycopg2.connect(dbname=db)
    with conn.cursor() as cur:
        cur.execute(sql)
        value = cur.fetchone()[0]
    conn.close()
    return value


# ---------------------------------------------------------------- measuring


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _tree_rss_kb(root: int) -> tuple[int, int]:
    """(sum of PSS over ``root`` and its descendants, the largest single process's VmRSS) in
    kB. By parent links, not process group: pyspark's python workers start a session of their
    own."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # state, ppid, ...
        children.setdefault(int(fields[1]), []).append(int(entry))
    total = largest = 0
    todo = [root]
    while todo:
        pid = todo.pop()
        largest = max(largest, _status_kb(pid, "VmRSS"))
        total += _pss_kb(pid)
        todo.extend(children.get(pid, []))
    return total, largest


def _pss_kb(pid: int) -> int:
    """Proportional set size: pyspark's forked python workers share most of their pages with
    the daemon, so summing their RSS would count those pages once per worker."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class Run:
    def __init__(self, seconds: float, peak_mb: float, jvm_mb: float, stdout: str, stderr: str):
        self.seconds, self.peak_mb, self.jvm_mb, self.stdout, self.stderr = (
            seconds,
            peak_mb,
            jvm_mb,
            stdout,
            stderr,
        )


def run(cmd: list[str], env: dict[str, str], work: Path, tree: bool = False) -> Run:
    """Run ``cmd`` in a process group of its own; wall-clock seconds and peak memory: with
    ``tree`` the largest PSS sum over the process tree (sampled), else the process's VmHWM."""
    tag = uuid.uuid4().hex[:8]
    out_path, err_path = work / f"{tag}.out", work / f"{tag}.err"
    peak = largest = 0
    with open(out_path, "w") as out, open(err_path, "w") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=out, stderr=err, text=True, start_new_session=True
        )
        try:
            while proc.poll() is None:
                if tree:
                    total, big = _tree_rss_kb(proc.pid)
                    peak, largest = max(peak, total), max(largest, big)
                else:
                    peak = max(peak, _status_kb(proc.pid, "VmHWM"))
                time.sleep(0.5 if tree else 0.05)
        except KeyboardInterrupt:
            os.killpg(proc.pid, signal.SIGTERM)
            raise
        seconds = time.perf_counter() - started
    stdout, stderr = out_path.read_text(), err_path.read_text()
    out_path.unlink()
    err_path.unlink()
    if proc.returncode != 0:
        raise SystemExit(
            f"{' '.join(cmd[:5])} failed ({proc.returncode}):\n{stderr[-3000:]}\n{stdout[-3000:]}"
        )
    return Run(seconds, peak / 1024, largest / 1024, stdout, stderr)


def logged_seconds(text: str, pattern: str) -> float | None:
    found = re.findall(pattern, text)
    return float(found[-1]) if found else None


# ---------------------------------------------------------------- steps


def generate(out: Path, events: int, days: float, seed: int, start: datetime) -> None:
    subprocess.run(
        [
            PY,
            "-m",
            "generator",
            "--days",
            str(days),
            "--events",
            str(events),
            "--seed",
            str(seed),
            "--start",
            start.isoformat().replace("+00:00", ""),
            "--out",
            str(out / "events") + "/",
        ],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def count_objects(raw: Path) -> int:
    return sum(1 for _ in (raw / "events").rglob("*.json"))


def last_hour(raw: Path) -> datetime:
    hours = sorted(
        p.relative_to(raw / "events").parts[:4] for p in (raw / "events").glob("*/*/*/*") if p.is_dir()
    )
    y, m, d, h = (int(x) for x in hours[-1])
    return datetime(y, m, d, h, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def pg_env(db: str, work: Path) -> dict[str, str]:
    env = dict(os.environ, PGDATABASE=db)
    env["DBT_TARGET_PATH"] = str(work / "dbt-pg" / "target")
    env["DBT_LOG_PATH"] = str(work / "dbt-pg" / "logs")
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    return env


def pg_build(db: str, raw: Path, since: datetime, until: datetime, work: Path) -> tuple[Run, Run]:
    env = pg_env(db, work)
    load = run(
        [
            PY,
            "-m",
            "loader",
            "load",
            "--source",
            str(raw),
            "--since",
            iso(since),
            "--until",
            iso(until),
            "--no-build",
        ],
        env,
        work,
    )
    build = run([DBT, "build", "--project-dir", str(ROOT), "--profiles-dir", str(ROOT)], env, work)
    return load, build


def spark_env(master: str, warehouse: Path, work: Path, db: str | None = None) -> dict[str, str]:
    env = dict(os.environ, SPARK_MASTER=master, SPARK_WAREHOUSE=str(warehouse))
    env["DBT_TARGET_PATH"] = str(warehouse.parent / f"dbt-{warehouse.name}" / "target")
    env["DBT_LOG_PATH"] = str(warehouse.parent / f"dbt-{warehouse.name}" / "logs")
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    if db:
        env["PGDATABASE"] = db
    return env


def spark_build(master: str, warehouse: Path, raw: Path, since: datetime, until: datetime, work: Path) -> Run:
    env = spark_env(master, warehouse, work)
    return run(
        [
            SPARK_PY,
            "-m",
            "spark",
            "build",
            "--raw",
            str(raw),
            "--since",
            iso(since),
            "--until",
            iso(until),
            "--no-publish",
        ],
        env,
        work,
        tree=True,
    )


def spark_publish(warehouse: Path, db: str, work: Path) -> Run:
    env = spark_env("local[2]", warehouse, work, db)
    return run([SPARK_PY, "-m", "spark", "publish"], env, work, tree=True)


def raw_seconds(r: Run) -> float | None:
    return logged_seconds(r.stderr, r"Raw: .*? in ([0-9.]+) ?s")


# ---------------------------------------------------------------- report


ROWS: list[tuple] = []


def record(case: str, events: int, r: Run | float, note: str = "", peak: float | None = None) -> float:
    seconds = r if isinstance(r, float) else r.seconds
    mem = peak if peak is not None else (None if isinstance(r, float) else r.peak_mb)
    ROWS.append((case, events, seconds, mem, note))
    rate = f"{events / seconds:>10,.0f}" if events and seconds else f"{'-':>10}"
    mem_text = f"{mem:8.0f}" if mem else f"{'-':>8}"
    print(f"  {case:<46} {events:>10,} {seconds:9.1f} s {rate} ev/s {mem_text} MB  {note}", flush=True)
    return seconds


def ratio(label: str, a: float | None, b: float | None) -> None:
    if a and b:
        print(f"  {label}: {a / b:.2f}x", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="events of the full build")
    parser.add_argument("--days", type=float, default=2, help="days the events span (one object per hour)")
    parser.add_argument(
        "--local1-events",
        type=int,
        help="events for the local[1] vs local[2] pair (default --events; smaller if 1 core is too slow)",
    )
    parser.add_argument("--skip-pg", action="store_true", help="no PostgreSQL runs")
    parser.add_argument("--skip-local1", action="store_true", help="no local[1] run")
    parser.add_argument("--skip-publish", action="store_true", help="do not time spark publish")
    parser.add_argument("--skip-incremental", action="store_true", help="no incremental hour")
    parser.add_argument("--keep", action="store_true", help="keep the directories and databases")
    args, _ = parser.parse_known_args()  # make bench passes every script the same arguments

    if not Path(SPARK_PY).exists():
        print("No .venv-spark: run `make spark-venv spark-jars` first (Spark benchmark skipped)")
        return 0
    work = ROOT / ".local" / f"bench-spark-{uuid.uuid4().hex[:8]}"
    work.mkdir(parents=True)
    raw = work / "raw"
    dbs: list[str] = []
    tag = work.name.replace("-", "_")
    try:
        print(
            f"Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}, "
            f"PostgreSQL {server_version()}; load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        started = time.perf_counter()
        generate(raw, args.events, args.days, 42, START)
        until = last_hour(raw) + timedelta(hours=1) - timedelta(seconds=1)
        print(
            f"Generated {args.events:,} events in {count_objects(raw)} objects ({START:%Y-%m-%d %H}h to "
            f"{until:%Y-%m-%d %H}h) in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        print(f"  {'case':<46} {'events':>10} {'seconds':>11} {'events/s':>15} {'peak RSS':>11}")

        pg_full = pg_db = None
        if not args.skip_pg:
            pg_db = f"{tag}_pg"
            create_database(pg_db)
            dbs.append(pg_db)
            load, build = pg_build(pg_db, raw, START, until, work)
            record("PostgreSQL: loader load", args.events, load)
            record("PostgreSQL: dbt build", args.events, build)
            pg_full = record(
                "PostgreSQL full (load + dbt build)",
                args.events,
                load.seconds + build.seconds,
                peak=max(load.peak_mb, build.peak_mb),
                note="client processes only",
            )

        wh2 = work / "wh-local2"
        s2 = spark_build("local[2]", wh2, raw, START, until, work)
        rs = raw_seconds(s2)
        spark2 = record(
            "Spark local[2] full (--no-publish)",
            args.events,
            s2,
            note=f"raw read {rs:.1f} s; largest process (JVM) {s2.jvm_mb:.0f} MB" if rs else "",
        )
        ratio("Spark local[2] / PostgreSQL (full build)", spark2, pg_full)

        if not args.skip_publish:
            pub_db = f"{tag}_publish"
            create_database(pub_db)
            dbs.append(pub_db)
            pub = spark_publish(wh2, pub_db, work)
            rows = scalar(pub_db, "select count(*) from analytics.agg_events_hourly")
            record("Spark publish (marts -> PostgreSQL)", 0, pub, note=f"agg_events_hourly {rows} rows")
            drop_database(pub_db)
            dbs.remove(pub_db)

        if not args.skip_incremental:
            hour = last_hour(raw) + timedelta(hours=1)
            before = count_objects(raw)
            inc_events = max(1, round(args.events / (args.days * 24)))
            generate(raw, inc_events, 1 / 24, 43, hour)
            new_objects = count_objects(raw) - before
            # the new hour's events (sessions may run past the hour: their tail lands in the next prefix)
            hour_until = last_hour(raw) + timedelta(hours=1) - timedelta(seconds=1)
            print(
                f"Incremental: {inc_events:,} events (seed 43) in {new_objects} new objects from {hour:%Y-%m-%d %H}h",
                flush=True,
            )
            pg_inc = None
            if pg_db:
                load, build = pg_build(pg_db, raw, hour, hour_until, work)
                record("PostgreSQL incremental: loader load", inc_events, load)
                record("PostgreSQL incremental: dbt build", inc_events, build)
                pg_inc = record(
                    "PostgreSQL incremental (load + dbt build)",
                    inc_events,
                    load.seconds + build.seconds,
                    peak=max(load.peak_mb, build.peak_mb),
                )
            si = spark_build("local[2]", wh2, raw, hour, hour_until, work)
            rs = raw_seconds(si)
            spark_inc = record(
                "Spark local[2] incremental (--no-publish)",
                inc_events,
                si,
                note=f"raw read {rs:.1f} s; JVM {si.jvm_mb:.0f} MB" if rs else "",
            )
            ratio("Spark / PostgreSQL (incremental hour)", spark_inc, pg_inc)
            ratio("Spark incremental / Spark full", spark_inc, spark2)
            if pg_db:
                pg_fact = scalar(pg_db, "select count(*) from analytics.fact_events")
                print(f"  fact_events rows after the incremental hour: PostgreSQL {pg_fact:,}", flush=True)
        # last: the slowest case (the incremental hour is outside its window)
        if not args.skip_local1:
            n1 = args.local1_events or args.events
            raw1, until1, spark2_small = raw, until, spark2
            if n1 != args.events:
                raw1 = work / "raw-local1"
                generate(raw1, n1, args.days, 42, START)
                until1 = last_hour(raw1) + timedelta(hours=1) - timedelta(seconds=1)
                wh = work / "wh-local2-small"
                r = spark_build("local[2]", wh, raw1, START, until1, work)
                spark2_small = record(
                    "Spark local[2] full (--no-publish)", n1, r, note=f"JVM {r.jvm_mb:.0f} MB"
                )
                shutil.rmtree(wh, ignore_errors=True)
            wh1 = work / "wh-local1"
            s1 = spark_build("local[1]", wh1, raw1, START, until1, work)
            rs = raw_seconds(s1)
            spark1 = record(
                "Spark local[1] full (--no-publish)",
                n1,
                s1,
                note=f"raw read {rs:.1f} s; JVM {s1.jvm_mb:.0f} MB" if rs else "",
            )
            ratio("Spark local[1] / local[2] (full build)", spark1, spark2_small)
            if not args.keep:
                shutil.rmtree(wh1, ignore_errors=True)

        print(f"Total {time.perf_counter() - started:.0f} s", flush=True)
    finally:
        if not args.keep:
            for db in dbs:
                drop_database(db)
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"Kept {work} and databases {', '.join(dbs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
