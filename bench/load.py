"""Loader benchmark: the loader (from the local S3 endpoint) against ``psql \\copy`` of the
same events into the same table shape, and a row-by-row ``executemany`` baseline.

    .venv/bin/python bench/load.py [--events 1000000] [--files-per-hour 1] [--gzip]
    .venv/bin/python bench/load.py --small-only [--small-events 100000] [--events-per-object 5]

The small-objects case (run after the main one, or alone with ``--small-only``) loads the same
events twice, each into a fresh database: as one object, and as many small objects of a few
events each (the shape the ingest endpoint writes: one object per request), from the local S3
endpoint and from a local directory; it prints objects/s, events/s and the small/one ratio.

Needs the local services (``make up``): PostgreSQL (PG*) and moto on AWS_ENDPOINT_URL. Works
in a bucket and databases of its own, removed at the end. Prints events/s, peak memory (max
RSS of each measured process) and the ratios."""

from __future__ import annotations

import argparse
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
import psycopg2  # noqa: E402
from databases import create_database, drop_database, server_version  # noqa: E402

from loader import schema  # noqa: E402
from loader.formats import copy_escape  # noqa: E402

START = datetime(2024, 6, 1, tzinfo=UTC)
COLUMNS = "payload, bucket, object_key, line_number, object_etag, load_id"


def pg(dbname: str):
    return psycopg2.connect(dbname=dbname)


def migrate(name: str) -> None:
    conn = pg(name)
    schema.migrate(conn)
    conn.close()


def count_rows(name: str) -> int:
    conn = pg(name)
    with conn.cursor() as cur:
        cur.execute("select count(*) from raw.clickstream_events")
        n = cur.fetchone()[0]
    conn.close()
    return n


def _hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float, subprocess.Popen, str]:
    """Run a command; return (seconds, peak RSS in MB of that process, proc, stdout).
    Peak RSS is the child's VmHWM polled from /proc (rusage's maxrss would include the
    benchmark's own memory at fork time: Linux carries it over exec)."""
    out_path = ROOT / ".local" / f"bench-{uuid.uuid4().hex[:8]}.out"
    err_path = out_path.with_suffix(".err")
    peak = 0.0
    with open(out_path, "w") as out, open(err_path, "w") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=err, text=True)
        while proc.poll() is None:
            hwm = _hwm_mb(proc.pid)
            if hwm is not None:
                peak = max(peak, hwm)
            time.sleep(0.02)
        seconds = time.perf_counter() - started
    stdout, stderr = out_path.read_text(), err_path.read_text()
    out_path.unlink()
    err_path.unlink()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed ({proc.returncode}):\n{stderr[-3000:]}")
    return seconds, peak, proc, stdout


def simple_events(n: int, hours: int):
    """Fallback event maker (contract-shaped) if the generator is not available."""
    for i in range(n):
        at = START + timedelta(seconds=i * hours * 3600 / max(n, 1))
        yield {
            "event_id": str(uuid.UUID(int=i + 1)),
            "event_name": ("page_view", "product_view", "add_to_cart")[i % 3],
            "event_timestamp": at.isoformat().replace("+00:00", "Z"),
            "received_at": at.isoformat().replace("+00:00", "Z"),
            "anonymous_id": f"anon-{i % 50000}",
            "session_id": f"sess-{i // 8}",
            "schema_version": "1",
            "page": {
                "url": f"https://shop.example/p/{i % 5000}",
                "path": f"/p/{i % 5000}",
                "title": "Product",
            },
            "device": {
                "type": "mobile",
                "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0)",
                "os": "iOS",
            },
            "traffic": {"source": "google", "medium": "cpc", "campaign": "spring"},
            "product": {"product_id": str(i % 5000), "name": "Blue shoe", "category": "shoes", "price": 59.9},
        }


def generate(s3, bucket: str, n: int, days: int, files_per_hour: int, gz: bool) -> dict:
    """Events into s3://bucket/events/YYYY/MM/DD/HH/: the project's generator if it is
    importable, else a built-in maker (one object per hour)."""
    try:
        from generator import generate_events, write_events
    except ImportError:
        return simple_write(s3, bucket, n, days, gz)
    events = generate_events(seed=42, start=START, days=days, events=n)
    summary = write_events(
        events, f"s3://{bucket}/events/", files_per_hour=files_per_hour, gzip=gz, s3_client=s3
    )
    summary["source"] = "generator"
    return summary


def simple_write(s3, bucket: str, n: int, days: int, gz: bool) -> dict:
    import gzip

    hours = days * 24
    per_hour = -(-n // hours)
    files = size = 0
    events = simple_events(n, hours)
    for h in range(hours):
        body = b"".join(json.dumps(e).encode() + b"\n" for _, e in zip(range(per_hour), events, strict=False))
        if not body:
            break
        size += len(body)
        at = START + timedelta(hours=h)
        key = f"events/{at:%Y/%m/%d/%H}/bench-{at:%Y%m%d%H}.json" + (".gz" if gz else "")
        s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(body) if gz else body)
        files += 1
    return {"events": n, "files": files, "bytes": size, "source": "built-in"}


def write_copy_file(s3, bucket: str, path: Path, load_id: str) -> int:
    """The same events, as COPY text rows with the same columns the loader writes."""
    rows = 0
    paginator = s3.get_paginator("list_objects_v2")
    with open(path, "wb") as out:
        for page in paginator.paginate(Bucket=bucket, Prefix="events/"):
            for item in page.get("Contents", []):
                key, etag = item["Key"], item["ETag"].strip('"')
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                if key.endswith(".gz"):
                    import gzip

                    body = gzip.decompress(body)
                mid = b"\t" + bucket.encode() + b"\t" + copy_escape(key.encode()) + b"\t"
                tail = b"\t" + etag.encode() + b"\t" + load_id.encode() + b"\n"
                for n, line in enumerate(body.split(b"\n"), start=1):
                    if line.strip():
                        out.write(copy_escape(line) + mid + str(n).encode() + tail)
                        rows += 1
    return rows


def executemany_sample(db: str, copy_file: Path, sample: int) -> tuple[int, float]:
    rows = []
    with open(copy_file, "rb") as f:
        for line in f:
            payload, bucket, key, n, etag, load_id = line.rstrip(b"\n").split(b"\t")
            payload = payload.replace(b"\\\\", b"\\")  # undo COPY escaping (no tabs in these events)
            rows.append(
                (payload.decode(), bucket.decode(), key.decode(), int(n), etag.decode(), load_id.decode())
            )
            if len(rows) >= sample:
                break
    conn = pg(db)
    started = time.perf_counter()
    with conn.cursor() as cur:
        cur.executemany(
            f"insert into raw.clickstream_events ({COLUMNS}) values (%s, %s, %s, %s, %s, %s)",  # noqa: S608
            rows,
        )
    conn.commit()
    seconds = time.perf_counter() - started
    conn.close()
    return len(rows), seconds


def loader_command(source: str, since: str, until: str) -> list[str]:
    """``python -m loader load`` of a window, without the build, printing its JSON summary."""
    return [sys.executable, "-m", "loader", "load", "--source", source, "--since", since, "--until", until,
            "--no-build", "--json"]  # fmt: skip


def remove_bucket(s3, bucket: str) -> None:
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    s3.delete_bucket(Bucket=bucket)


def small_objects_case(s3, args, env: dict[str, str], tag: str) -> None:
    """The same events as one object and as ``events / per_object`` small objects."""
    import shutil
    import threading
    from concurrent.futures import ThreadPoolExecutor

    n, per = args.small_events, args.events_per_object
    try:
        from generator import generate_events

        events = list(generate_events(seed=42, start=START, days=1, events=n))[:n]
    except ImportError:
        events = list(simple_events(n, 24))
    lines = [json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in events]
    n = len(lines)
    small = [b"".join(lines[i : i + per]) for i in range(0, n, per)]
    prefix = f"events/{START:%Y/%m/%d/%H}/"
    work = ROOT / ".local" / "bench" / f"small-{tag}"
    buckets = {"one": f"bench-one-{tag}", "small": f"bench-small-{tag}"}
    objects = {"one": [(f"{prefix}all.json", b"".join(lines))], "small": []}
    objects["small"] = [(f"{prefix}req-{i:06d}.json", body) for i, body in enumerate(small)]
    print(f"\nsmall objects: {n:,} events as 1 object and as {len(small):,} objects of {per} events")
    t = time.perf_counter()
    local = threading.local()

    def client():
        if not hasattr(local, "s3"):
            local.s3 = boto3.client(
                "s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1"
            )
        return local.s3

    for shape, bucket in buckets.items():
        s3.create_bucket(Bucket=bucket)
        with ThreadPoolExecutor(16) as pool:
            list(
                pool.map(
                    lambda kb, b=bucket: client().put_object(Bucket=b, Key=kb[0], Body=kb[1]), objects[shape]
                )
            )
        for key, body in objects[shape]:
            path = work / shape / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
    print(f"written to the local S3 and to {work} in {time.perf_counter() - t:.0f}s")
    since = START.strftime("%Y-%m-%d")
    rows = []
    try:
        for where in [w for w in ("local S3", "directory") if w.split()[-1][:3] in args.small_sources]:
            measured = {}
            for shape in ("one", "small"):
                db = f"bench_{shape}_{tag}"
                drop_database(db)
                create_database(db)
                source = f"s3://{buckets[shape]}/events/" if where == "local S3" else str(work / shape)
                cmd = loader_command(source, since, since)
                seconds, rss, _, out = run_measured(cmd, dict(env, PGDATABASE=db))
                summary = json.loads(out.strip().splitlines()[-1])
                print(f"  {where}, {summary['objects']:,} objects: {seconds:.2f}s, {rss:.0f} MB")
                assert summary["events"] == n == count_rows(db), summary
                drop_database(db)
                measured[shape] = (seconds, rss, summary["objects"])
                rows.append((where, shape, summary["objects"], seconds, rss))
            ratio = (n / measured["small"][0]) / (n / measured["one"][0])
            print(f"{where}: small/one throughput {ratio:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for bucket in buckets.values():
            remove_bucket(s3, bucket)
    print()
    print("| source | shape | objects | seconds | objects/s | events/s | peak RSS (MB) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for where, shape, count, seconds, rss in rows:
        label = "1 object" if shape == "one" else f"{count:,} objects of {per} events"
        print(
            f"| {where} | {label} | {count:,} | {seconds:.2f} | {count / seconds:,.0f} | {n / seconds:,.0f} | {rss:.0f} |"
        )


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(
            next(
                ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")
            ).split()[1]
        )
        mem = f"{mem_kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        mem = "unknown memory"
    return f"{os.cpu_count()} CPUs ({cpu}), {mem}, {platform.system()} {platform.release()}, PostgreSQL {server_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--files-per-hour", type=int, default=1)
    parser.add_argument("--gzip", action="store_true", help="write gzip-compressed objects")
    parser.add_argument("--executemany-sample", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=2, help="rounds of loader / psql \\copy (best counts)")
    parser.add_argument("--small-events", type=int, default=100_000, help="events in the small-objects case")
    parser.add_argument("--events-per-object", type=int, default=5, help="events per small object")
    parser.add_argument(
        "--small-sources", default="S3,dir", help="small-objects case sources: S3, dir or both (S3,dir)"
    )
    parser.add_argument("--small-only", action="store_true", help="run only the small-objects case")
    args = parser.parse_args()

    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        raise SystemExit("AWS_ENDPOINT_URL is not set: this benchmark runs against the local S3 (make up)")
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=os.environ.get("AWS_REGION", "us-east-1"))
    tag = uuid.uuid4().hex[:8]
    bucket = f"bench-loader-{tag}"
    dbs = {name: f"bench_{name}_{tag}" for name in ("loader", "small", "psql", "rows")}
    work = ROOT / ".local" / "bench"
    work.mkdir(parents=True, exist_ok=True)
    copy_file = work / f"events-{tag}.copy"
    print(f"machine: {machine()}")
    if args.small_only:
        small_objects_case(s3, args, dict(os.environ), tag)
        return 0
    s3.create_bucket(Bucket=bucket)
    try:
        t = time.perf_counter()
        gen = generate(s3, bucket, args.events, args.days, args.files_per_hour, args.gzip)
        print(
            f"generated {gen['events']:,} events ({gen['source']}) in {gen['files']} objects,"
            f" {gen['bytes'] / 1e6:,.0f} MB uncompressed{' (gzip)' if args.gzip else ''},"
            f" into s3://{bucket}/events/ in {time.perf_counter() - t:.1f}s"
        )
        for db in dbs.values():
            create_database(db)
        env = dict(os.environ)
        since = START.strftime("%Y-%m-%d")
        until = (START + timedelta(days=args.days + 1)).strftime("%Y-%m-%d")
        results = {}

        # 1. the loader, from the local S3 endpoint (its own process: its own peak RSS)
        def loader(db: str, until_arg: str) -> tuple[float, float, dict]:
            run_env = dict(env, PGDATABASE=db)
            cmd = loader_command(f"s3://{bucket}/events/", since, until_arg)
            seconds, rss, _, out = run_measured(cmd, run_env)
            return seconds, rss, json.loads(out.strip().splitlines()[-1])

        first_hour = (START + timedelta(hours=1)).strftime("%Y-%m-%dT%H:59:59Z")  # two objects: two workers
        s_small, rss_small, sum_small = loader(dbs["small"], first_hour)
        load_id = str(uuid.uuid4())
        rows = write_copy_file(s3, bucket, copy_file, load_id)
        copy_cmd = [
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            dbs["psql"],
            "-c",
            f"\\copy raw.clickstream_events ({COLUMNS}) from '{copy_file}'",
        ]
        # loader and psql \copy alternate, each in a fresh database; the best of each counts
        # (the machine may be shared: alternating spreads the noise over both)
        loader_runs, psql_runs = [], []
        for attempt in range(args.repeat):
            if attempt:
                for name in ("loader", "psql"):
                    drop_database(dbs[name])
                    create_database(dbs[name])
            # 1. the loader, from the local S3 endpoint (its own process: its own peak RSS)
            seconds, rss, summary = loader(dbs["loader"], until)
            assert summary["events"] == gen["events"] == count_rows(dbs["loader"]), summary
            loader_runs.append((seconds, rss))
            # 2. psql \copy of the same events (same columns, same table, fresh database)
            migrate(dbs["psql"])
            p_seconds, p_rss, _, _ = run_measured(copy_cmd, env)
            assert count_rows(dbs["psql"]) == rows == gen["events"]
            psql_runs.append((p_seconds, p_rss))
            print(
                f"round {attempt + 1}: loader {seconds:.2f}s ({summary['objects']} objects),"
                f" psql \\copy {p_seconds:.2f}s: {p_seconds / seconds:.0%}"
            )
        seconds, rss = min(loader_runs)
        p_seconds, p_rss = min(psql_runs)
        results["loader"] = (summary["events"], seconds, rss)
        results["psql"] = (rows, p_seconds, p_rss)

        # 3. row-by-row executemany, on a sample (extrapolated)
        migrate(dbs["rows"])
        r_n, r_seconds = executemany_sample(dbs["rows"], copy_file, args.executemany_sample)
        results["executemany"] = (r_n, r_seconds, None)

        psql_rate = rows / p_seconds
        print()
        print("| method | events | seconds | events/s | peak RSS (MB) | vs psql \\copy |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, label in (
            ("loader", "loader (`python -m loader load`, from local S3)"),
            ("psql", "`psql \\copy` of a prepared COPY file"),
            ("executemany", f"psycopg2 `executemany` (sample of {r_n:,}, extrapolated)"),
        ):
            n, secs, peak = results[name]
            rate = n / secs
            print(
                f"| {label} | {n:,} | {secs:.2f} | {rate:,.0f} | {'-' if peak is None else f'{peak:.0f}'} |"
                f" {rate / psql_rate:.0%} |"
            )
        if results["executemany"][1]:
            est = gen["events"] / (r_n / r_seconds)
            print(f"\nexecutemany for all {gen['events']:,} events would take about {est / 60:.1f} minutes")
        print(
            f"loader peak RSS with {sum_small['events']:,} events / {sum_small['objects']} objects: {rss_small:.0f} MB;"
            f" with {summary['events']:,} events / {summary['objects']} objects: {rss:.0f} MB"
        )
        print(f"loader / psql \\copy throughput: {results['loader'][0] / seconds / psql_rate:.0%}")
        small_objects_case(s3, args, env, tag)
    finally:
        copy_file.unlink(missing_ok=True)
        for db in dbs.values():
            try:
                drop_database(db)
            except psycopg2.Error as exc:
                print(f"could not drop {db}: {exc}", file=sys.stderr)
        remove_bucket(s3, bucket)
    return 0


if __name__ == "__main__":
    sys.exit(main())
