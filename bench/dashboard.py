"""Dashboard benchmark: the queries behind each filter change and behind the first page load,
p50/p95 over repeated runs with varied filter values, at 100 thousand and 10 million events.

    .venv/bin/python bench/dashboard.py [--sizes 100000,10000000] [--runs 30] [--keep] [--reuse DB]
                                        [--browser]

For each size: a database of its own, generator events COPYed into raw.clickstream_events
(the loader's table), `dbt build`, then the dashboards' own query functions (shiny/queries/)
run as the read-only role. --browser also times the first page load in headless Chromium
(serve.py against that database). Databases are dropped at the end unless --keep."""

from __future__ import annotations

import argparse
import io
import json
import os
import queue
import random
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "shiny"))
sys.path.insert(0, str(ROOT / "bench"))

import psycopg2  # noqa: E402
import queries  # noqa: E402
from databases import create_database, drop_database  # noqa: E402
from queries import behaviour as behaviour_q  # noqa: E402

from loader import schema  # noqa: E402
from loader.formats import copy_escape  # noqa: E402

START = datetime(2026, 1, 5, tzinfo=UTC)
BATCH = 50_000
DEVICES = ["desktop", "mobile", "tablet"]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]


def etl_connect(dbname: str):
    """The ETL role (PGUSER), as the loader and dbt connect."""
    conn = psycopg2.connect(dbname=dbname)
    conn.autocommit = True
    return conn


def days_for(n: int) -> int:
    return 30 if n <= 1_000_000 else 90


def fill_raw(db: str, n: int) -> tuple[int, float, str]:
    """Generator events straight into raw.clickstream_events with COPY (the loader's columns)."""
    from generator import generate_events

    conn = psycopg2.connect(dbname=db)
    schema.migrate(conn)
    load_id = str(uuid.uuid4())
    mid = b"\tbench\t"
    tail = b"\tbench-etag\t" + load_id.encode() + b"\n"
    started = time.perf_counter()
    rows = 0
    buf = io.BytesIO()
    with conn.cursor() as cur:
        for event in generate_events(seed=42, start=START, days=days_for(n), events=n):
            rows += 1
            key = f"events/{event.get('received_at', '')[:13]}/bench.json".encode()
            buf.write(copy_escape(json.dumps(event).encode()) + mid + key + b"\t" + str(rows).encode() + tail)
            if rows % BATCH == 0:
                buf.seek(0)
                cur.copy_expert(
                    "copy raw.clickstream_events (payload, bucket, object_key, line_number, object_etag, load_id)"
                    " from stdin",
                    buf,
                )
                buf = io.BytesIO()
        buf.seek(0)
        cur.copy_expert(
            "copy raw.clickstream_events (payload, bucket, object_key, line_number, object_etag, load_id) from stdin",
            buf,
        )
        cur.execute(
            "insert into raw.load_runs (load_id, started_at, finished_at, objects, events, rejects, status)"
            " values (%s, now(), now(), 1, %s, 0, 'succeeded')",
            (load_id, rows),
        )
    conn.commit()
    conn.close()
    return rows, time.perf_counter() - started, load_id


def dbt_build(db: str) -> float:
    env = dict(os.environ, PGDATABASE=db)
    work = ROOT / ".local" / "bench-dbt" / db
    env["DBT_TARGET_PATH"] = str(work / "target")
    env["DBT_LOG_PATH"] = str(work / "logs")
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    started = time.perf_counter()
    result = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "dbt"),
            "build",
            "--project-dir",
            str(ROOT),
            "--profiles-dir",
            str(ROOT),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"dbt build failed:\n{result.stdout[-4000:]}")
    return time.perf_counter() - started


def reader(db: str):
    conn = psycopg2.connect(
        dbname=db,
        user=os.environ.get("DASHBOARD_PGUSER", "clickstream_reader"),
        password=os.environ.get("DASHBOARD_PGPASSWORD", "clickstream_reader"),
    )
    conn.set_session(readonly=True, autocommit=True)
    return conn


def scenarios(conn, rnd: random.Random):
    """The query sets the app runs: per page on a filter change, and on the first page load."""
    bounds = queries.date_bounds(conn).df.iloc[0]
    lo, hi = bounds["min_date"], bounds["max_date"]
    span = (hi - lo).days

    def window():
        length = rnd.choice([7, 30, 90])
        end = hi - timedelta(days=rnd.randint(0, max(span - 1, 0)) // 3)
        return max(lo, end - timedelta(days=length - 1)), end

    def some(values):
        return rnd.choice([None, None, [rnd.choice(values)], values[:2]])

    choices = queries.filter_choices(conn).df
    sources = list(choices.loc[choices["kind"] == "traffic_source", "value"])[:6] or ["google"]
    categories = list(choices.loc[choices["kind"] == "product_category", "value"])[:6] or ["x"]
    brands = list(choices.loc[choices["kind"] == "product_brand", "value"])[:6] or ["x"]
    prices = queries.price_bounds(conn).df.iloc[0]
    low, high = float(prices["min_price"]), float(prices["max_price"])

    def overview():
        s, e = window()
        d, src = some(DEVICES), some(sources)
        return [
            ("overview_kpis", lambda c: queries.overview_kpis(c, s, e, d, src)),
            ("funnel_steps", lambda c: queries.funnel_steps(c, s, e, d, src)),
            (
                "events_over_time",
                lambda c: queries.events_over_time(
                    c, s, e, queries.auto_grain(s, e), queries.TIME_SERIES_EVENTS, d, src
                ),
            ),
            ("top_products", lambda c: queries.product_performance(c, s, e, "purchases", d, src, limit=20)),
        ]

    def funnel():
        s, e = window()
        d, src = some(DEVICES), some(sources)
        dim = rnd.choice(sorted(queries.FUNNEL_BREAKDOWNS))
        return [
            ("funnel_steps", lambda c: queries.funnel_steps(c, s, e, d, src)),
            ("funnel_breakdown", lambda c: queries.funnel_breakdown(c, s, e, dim, d, src)),
            ("funnel_time_to_convert", lambda c: queries.funnel_time_to_convert(c, s, e, d, src)),
        ]

    def products():
        s, e = window()
        f = {"categories": some(categories), "brands": some(brands) if rnd.random() < 0.3 else None}
        # the app always sends its price slider: the full range unless narrowed
        f["price_min"], f["price_max"] = rnd.choice(
            [(low, high), (low, high), (low, high / 4), (high / 4, high)]
        )
        rank = rnd.choice(sorted(queries.PRODUCT_RANKINGS))
        return [
            ("product_performance", lambda c: queries.product_performance(c, s, e, rank, **f)),
            ("product_attention", lambda c: queries.product_attention(c, s, e, **f)),
            ("rollup_category", lambda c: queries.product_rollup(c, s, e, "product_category", **f)),
            ("rollup_brand", lambda c: queries.product_rollup(c, s, e, "product_brand", **f)),
            ("rarely_viewed", lambda c: queries.rarely_viewed_products(c, s, e, **f)),
        ]

    def activity():
        s, e = window()
        tz, d, src = rnd.choice(ZONES), some(DEVICES), some(sources)
        names = queries.TIME_SERIES_EVENTS
        return [
            ("events_by_hour", lambda c: queries.events_by_hour(c, s, e, tz, names, d, src)),
            ("events_by_local_day", lambda c: queries.events_by_local_day(c, s, e, tz, names, d, src)),
            ("heatmap", lambda c: queries.hour_weekday_heatmap(c, s, e, tz, names, d, src)),
            (
                "activity_breakdown",
                lambda c: queries.activity_breakdown(c, s, e, "device_type", tz, names, d, src),
            ),
            ("conversion_by_weekday", lambda c: queries.conversion_by_weekday(c, s, e, d, src)),
            ("campaign_sessions", lambda c: queries.campaign_sessions_per_day(c, s, e, d, src)),
        ]

    def behaviour():
        s, e = window()
        d, src = some(DEVICES), some(sources)
        first = rnd.choice([None, None, "home", "product", "category", "add_to_cart"])
        kind = rnd.choice(sorted(behaviour_q.RETENTION_KINDS))
        return [
            ("top_paths", lambda c: behaviour_q.top_paths(c, s, e, d, src)),
            ("top_purchase_paths", lambda c: behaviour_q.top_purchase_paths(c, s, e, d, src)),
            ("path_flows", lambda c: behaviour_q.path_flows(c, s, e, first, d, src)),
            ("retention_weekly", lambda c: behaviour_q.retention_weekly(c, s, e, kind, d, src)),
            ("attribution", lambda c: behaviour_q.attribution_by_channel(c, s, e, d, src)),
        ]

    def first_load():
        e = hi
        s = max(lo, e - timedelta(days=89))
        return [
            ("date_bounds", lambda c: queries.date_bounds(c)),
            ("filter_choices", lambda c: queries.filter_choices(c)),
            ("price_bounds", lambda c: queries.price_bounds(c)),
            ("data_health", lambda c: queries.data_health(c)),
            ("overview_kpis", lambda c: queries.overview_kpis(c, s, e)),
            ("funnel_steps", lambda c: queries.funnel_steps(c, s, e)),
            (
                "events_over_time",
                lambda c: queries.events_over_time(c, s, e, "day", queries.TIME_SERIES_EVENTS),
            ),
            ("top_products", lambda c: queries.product_performance(c, s, e, "purchases", limit=20)),
        ]

    return {
        "overview": overview,
        "funnel": funnel,
        "products": products,
        "activity": activity,
        "behaviour": behaviour,
        "first load": first_load,
    }


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


# pages whose queries the app runs side by side on a filter change (shiny/querying.py: SessionDb.side_by_side);
# the first load's are timed one after another (a conservative sum)
SIDE_BY_SIDE = {"overview", "funnel", "products", "activity", "behaviour"}


def measure(db: str, runs: int, seed: int = 7, pages: set[str] | None = None) -> dict:
    conn = reader(db)
    rnd = random.Random(seed)
    sets = {name: make for name, make in scenarios(conn, rnd).items() if not pages or name in pages}
    per_query: dict[str, list[float]] = {}
    per_change: dict[str, list[float]] = {}
    workers = [reader(db) for _ in range(4)]
    free = queue.Queue()
    for worker in workers:
        free.put(worker)

    def on_own_connection(call):
        worker = free.get()
        try:
            return call(worker)
        finally:
            free.put(worker)

    with ThreadPoolExecutor(max_workers=len(workers)) as pool:
        for name, make in sets.items():
            for _, call in make():  # warm-up: caches and plans, as in a running app
                call(conn)
            for _ in range(runs):
                calls = make()
                total = 0.0
                for q_name, call in calls:
                    t0 = time.perf_counter()
                    call(conn)
                    ms = (time.perf_counter() - t0) * 1000
                    total += ms
                    per_query.setdefault(f"{name}: {q_name}", []).append(ms)
                if name in SIDE_BY_SIDE:
                    per_change.setdefault(f"{name}, one after another", []).append(total)
                    # the same filter change again, as the app runs it: all queries at once
                    t0 = time.perf_counter()
                    for future in [pool.submit(on_own_connection, call) for _, call in calls]:
                        future.result()
                    total = (time.perf_counter() - t0) * 1000
                    per_change.setdefault(f"{name}, side by side (as the app runs it)", []).append(total)
                else:
                    per_change.setdefault(name, []).append(total)
    for worker in workers:
        worker.close()
    conn.close()
    return {"per_query": per_query, "per_change": per_change}


def browser_first_load(db: str, tries: int = 5) -> tuple[list[float], list[float]]:
    """Seconds from navigation to the overview's numbers on screen (funnel and top-products
    tables, health bar), and to its charts drawn too, in headless Chromium."""
    import socket

    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PGDATABASE=db, LOG_LEVEL="warning")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "shiny" / "serve.py"), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    numbers, charts = [], []
    try:
        url = f"http://127.0.0.1:{port}/clickstream-analytics/"
        deadline = time.time() + 30
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=args, headless=True)
            for i in range(tries + 1):
                page = b.new_page()
                t0 = time.perf_counter()
                page.goto(url)
                page.wait_for_function(
                    "() => document.querySelector('#overview-products-table table tbody tr')"
                    " && document.querySelector('#overview-funnel-table table tbody tr')"
                    " && document.querySelector('.health-status')",
                    timeout=60_000,
                    polling=20,
                )
                t1 = time.perf_counter() - t0
                page.wait_for_function(
                    "() => ['overview-funnel-figure', 'overview-daily-figure'].every(id => {"
                    " const f = document.getElementById(id); return f && f._fullData; })",
                    timeout=60_000,
                    polling=20,
                )
                if i:  # the first one warms the server's caches
                    numbers.append(t1)
                    charts.append(time.perf_counter() - t0)
                page.close()
            b.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return numbers, charts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100000,10000000", help="comma-separated event counts")
    parser.add_argument("--runs", type=int, default=30, help="filter changes measured per page")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark databases")
    parser.add_argument("--reuse", help="measure an existing database (built earlier with --keep)")
    parser.add_argument("--browser", action="store_true", help="also time the first page load in Chromium")
    parser.add_argument("--pages", help="only these query sets (comma-separated, e.g. behaviour,first load)")
    args, _ = parser.parse_known_args(argv)  # make bench passes every script the same arguments

    targets: list[tuple[str, int | None, bool]] = []
    if args.reuse:
        targets.append((args.reuse, None, False))
    else:
        for size in [int(s) for s in args.sizes.split(",") if s.strip()]:
            targets.append((f"bench_dash_{size}_{uuid.uuid4().hex[:6]}", size, True))

    for db, size, created in targets:
        try:
            if created:
                create_database(db)
                rows, gen_s, _ = fill_raw(db, size)
                print(f"\n== {rows:,} events: generated + COPY {gen_s:.0f}s", flush=True)
                build_s = dbt_build(db)
                print(f"   dbt build {build_s:.0f}s  (database {db})", flush=True)
            conn = etl_connect(db)
            with conn.cursor() as cur:
                cur.execute("select count(*) from analytics.fact_events")
                events = cur.fetchone()[0]
                cur.execute("select count(*) from analytics.fact_sessions")
                sessions = cur.fetchone()[0]
            conn.close()
            print(f"\n== dashboards on {events:,} events / {sessions:,} sessions ({db})")
            pages = {p.strip() for p in args.pages.split(",")} if args.pages else None
            result = measure(db, args.runs, pages=pages)
            print(f"{'query':45} {'p50 ms':>8} {'p95 ms':>8} {'n':>4}")
            for name, values in result["per_query"].items():
                print(f"{name:45} {pct(values, 50):8.1f} {pct(values, 95):8.1f} {len(values):4}")
            print(f"\n{'all queries behind one change':45} {'p50 ms':>8} {'p95 ms':>8}")
            for name, values in result["per_change"].items():
                print(f"{name:45} {pct(values, 50):8.1f} {pct(values, 95):8.1f}")
            if args.browser:
                numbers, charts = browser_first_load(db)
                print(
                    f"\nfirst page load in Chromium, {len(numbers)} loads (load average {os.getloadavg()[0]:.1f}):"
                )
                print(f"  numbers on screen   p50 {statistics.median(numbers):.2f}s  max {max(numbers):.2f}s")
                print(f"  charts drawn too    p50 {statistics.median(charts):.2f}s  max {max(charts):.2f}s")
        finally:
            if created and not args.keep:
                drop_database(db)


if __name__ == "__main__":
    main()
