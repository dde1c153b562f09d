"""Ad-hoc funnel benchmark: analytics.funnel(spec) on a shop's warehouse of 1 M events a day.

40 random specs (seeded): 2-6 steps drawn from the shop's event names, with and without step
filters (category, brand, price, page path, search), windows from 10 minutes to 7 days, sessions
and users, ordered and any order, with and without a breakdown. Each runs over the last 7 days
of the warehouse and over all of it; p50, p95 and max are printed per kind, and the plans of the
slowest specs (auto_explain of the query the function runs, as the cluster's admin).

    .venv/bin/python bench/funnels.py                         # the kept 10-day history
    .venv/bin/python bench/funnels.py --database NAME --specs 40 --seed 7

The warehouse is the one `bench/cycles.py --days 10 --keep-history` keeps (about 10 M events;
made here first when it is missing, about 50 minutes). Needs the local services (make up)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import psycopg2  # noqa: E402
from databases import database_exists  # noqa: E402

WINDOWS = ["10 minutes", "30 minutes", "1 hour", "6 hours", "1 day", "3 days", "7 days"]


def connect(dbname: str, admin: bool = False):
    if admin:
        conn = psycopg2.connect(
            dbname=dbname,
            user=os.environ.get("PGADMIN_USER", "clickstream_admin"),
            password=os.environ.get("PGADMIN_PASSWORD", ""),
        )
    else:
        conn = psycopg2.connect(dbname=dbname)  # libpq's PG* variables
    conn.autocommit = True
    return conn


def shop_vocabulary(conn) -> dict:
    """What random specs draw from: the event names by how often they occur, categories, brands,
    prices, page path prefixes and search words of the warehouse."""
    with conn.cursor() as cur:
        cur.execute(
            "select name, count(*) from (select unnest(event_names) as name from analytics.fact_session_sequences"
            " tablesample system (2)) as sampled group by 1 order by 2 desc"
        )
        names = cur.fetchall()
        cur.execute(
            "select split_part(product_category, '.', 1), count(*) from analytics.dim_products"
            " where product_category is not null group by 1 order by 2 desc limit 20"
        )
        categories = [row[0] for row in cur.fetchall()]
        cur.execute(
            "select product_category from analytics.dim_products where product_category like '%.%'"
            " group by 1 order by count(*) desc limit 20"
        )
        categories += [row[0] for row in cur.fetchall()]
        cur.execute(
            "select product_brand from analytics.dim_products where product_brand is not null"
            " group by 1 order by count(*) desc limit 30"
        )
        brands = [row[0] for row in cur.fetchall()]
        cur.execute(
            "select percentile_disc(array[0.1, 0.25, 0.5, 0.75, 0.9]) within group (order by product_price)"
            " from analytics.dim_products"
        )
        prices = [float(p) for p in cur.fetchone()[0]]
        cur.execute(
            "select '/' || split_part(path, '/', 2), count(*) from (select unnest(page_paths) as path"
            " from analytics.fact_session_sequences tablesample system (1)) as sampled"
            " where path like '/%' group by 1 order by 2 desc limit 5"
        )
        paths = [row[0] for row in cur.fetchall()]
        cur.execute(
            "select query from (select unnest(search_queries) as query from analytics.fact_session_sequences"
            " tablesample system (2)) as sampled where query is not null group by 1 order by count(*) desc limit 20"
        )
        words = [row[0].split()[0][:4] for row in cur.fetchall() if row[0].split()]
        cur.execute(
            "select min(first_event_date), max(last_event_date) from analytics.fact_session_sequences"
        )
        first, last = cur.fetchone()
    return {
        "names": names,
        "categories": categories,
        "brands": brands,
        "prices": prices,
        "paths": paths or ["/"],
        "words": words or ["a"],
        "first": first,
        "last": last,
    }


def random_spec(rng: random.Random, v: dict) -> tuple[dict, dict]:
    """A spec and its kind: the funnel an analyst might ask, drawn from the shop's vocabulary."""
    names = [n for n, _ in v["names"]]
    weights = [c for _, c in v["names"]]
    steps = []
    filtered = rng.random() < 0.5
    for _ in range(rng.randint(2, 6)):
        step = {"event": rng.choices(names, weights)[0]}
        if filtered and rng.random() < 0.5:
            if step["event"] in ("product_view", "add_to_cart", "purchase"):
                kind = rng.choice(["category", "brand", "price"])
                if kind == "category":
                    step["category"] = rng.choice(v["categories"])
                elif kind == "brand":
                    step["brand"] = rng.choice(v["brands"])
                else:
                    low = rng.choice(v["prices"][:3])
                    step["price_min"] = low
                    step["price_max"] = low * rng.choice([2, 4, 10])
            elif step["event"] == "page_view":
                step["page_path"] = rng.choice(v["paths"])
            elif step["event"] == "search":
                step["search"] = rng.choice(v["words"])
        steps.append(step)
    spec = {
        "steps": steps,
        "window": rng.choice(WINDOWS),
        "count": rng.choice(["sessions", "users"]),
        "order": "any" if rng.random() < 0.2 else "ordered",
    }
    if rng.random() < 0.3:
        spec["breakdown"] = rng.choice(["device", "source", "category", "brand"])
    if rng.random() < 0.2:
        spec["device"] = rng.sample(["desktop", "mobile", "tablet"], rng.randint(1, 2))
    kind = {
        "count": spec["count"],
        "filters": "step filters" if any(len(s) > 1 for s in steps) else "no step filters",
        "breakdown": "breakdown" if "breakdown" in spec else "no breakdown",
        "order": spec["order"],
    }
    return spec, kind


def run(conn, spec: dict) -> tuple[float, list]:
    """Seconds the function took (the statement timeout's seconds, as a lower bound, when it
    took longer) and its rows."""
    with conn.cursor() as cur:
        started = time.perf_counter()
        try:
            cur.execute("select * from analytics.funnel(%s::jsonb)", (json.dumps(spec),))
        except psycopg2.errors.QueryCanceled:
            print(f"  over the statement timeout: {json.dumps(spec)}", flush=True)
            return time.perf_counter() - started, []
        rows = cur.fetchall()
        return time.perf_counter() - started, rows


def plan(dbname: str, spec: dict) -> str:
    """The plan (EXPLAIN ANALYZE, BUFFERS) of the query the function runs, from auto_explain."""
    conn = connect(dbname, admin=True)
    notices = []
    try:
        with conn.cursor() as cur:
            cur.execute("load 'auto_explain'")
            for setting, value in (
                ("auto_explain.log_min_duration", "0"),
                ("auto_explain.log_analyze", "on"),
                ("auto_explain.log_buffers", "on"),
                ("auto_explain.log_nested_statements", "on"),
                ("auto_explain.log_level", "notice"),
                ("client_min_messages", "notice"),
            ):
                cur.execute(f"set {setting} = '{value}'")
            cur.execute("select * from analytics.funnel(%s::jsonb)", (json.dumps(spec),))
            notices = [n for n in conn.notices if "Query Text" in n and "with" in n]
    finally:
        conn.close()
    return max(notices, key=len) if notices else "(no plan)"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(label: str, seconds: list[float]) -> str:
    return (
        f"{label:<34} {len(seconds):>3}  p50 {statistics.median(seconds) * 1000:>7.0f} ms"
        f"  p95 {percentile(seconds, 0.95) * 1000:>7.0f} ms  max {max(seconds) * 1000:>7.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", help="the warehouse (default: bench/cycles.py's kept 10-day history)")
    parser.add_argument(
        "--days", type=int, default=10, help="days of the kept history to use or make (default 10)"
    )
    parser.add_argument("--specs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=33)
    parser.add_argument("--plans", type=int, default=2, help="plans printed of the slowest specs")
    parser.add_argument("--timeout", type=float, default=60, help="seconds a spec may take (default 60)")
    parser.add_argument("--all-days", action="store_true", help="also over all days of the warehouse")
    args = parser.parse_args()
    dbname = args.database or f"bench_cycles_1000000_{args.days}d_42_history"
    if not database_exists(dbname):
        if args.database:
            raise SystemExit(f"no database {dbname}")
        print(
            f"no kept history {dbname}: making it (bench/cycles.py --days {args.days} --keep-history)",
            flush=True,
        )
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "bench" / "cycles.py"),
                "--days",
                str(args.days),
                "--keep-history",
                "--cycles",
                "1",
            ],
            check=True,
        )
    conn = connect(dbname)
    with conn.cursor() as cur:
        cur.execute(f"set statement_timeout = {int(args.timeout * 1000)}")
        cur.execute("select count(*), sum(events) from analytics.fact_session_sequences")
        sessions, events = cur.fetchone()
    vocabulary = shop_vocabulary(conn)
    first, last = vocabulary["first"], vocabulary["last"]
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()};"
        f" database {dbname}: {events:,} events in {sessions:,} sessions, {first} to {last}",
        flush=True,
    )
    rng = random.Random(args.seed)
    specs = [random_spec(rng, vocabulary) for _ in range(args.specs)]
    ranges = {"7 days": ((last - timedelta(days=6)).isoformat(), last.isoformat())}
    if args.all_days:
        ranges["all days"] = (first.isoformat(), last.isoformat())
    for spec, _ in specs[:3]:  # warm the cache as a dashboard in use has it
        run(conn, {**spec, "from": ranges["7 days"][0], "to": ranges["7 days"][1]})
    results: dict[str, list[tuple[float, dict, dict]]] = {}
    for label, (start, end) in ranges.items():
        results[label] = []
        for spec, kind in specs:
            full = {**spec, "from": start, "to": end}
            seconds, rows = run(conn, full)
            results[label].append((seconds, kind, full))
            print(f"  {seconds * 1000:8.0f} ms  {json.dumps(full)}", flush=True)
        timings = [r[0] for r in results[label]]
        print(f"\n{label} ({start} to {end})")
        print(summary("every spec", timings))
        for dimension in ("count", "order", "filters", "breakdown"):
            for value in sorted({k[dimension] for _, k, _ in results[label]}):
                print(summary(f"  {value}", [s for s, k, _ in results[label] if k[dimension] == value]))
    print("\nslowest specs (7 days):")
    slowest = sorted(results["7 days"], key=lambda r: -r[0])[: max(args.plans, 3)]
    for seconds, _, spec in slowest:
        print(f"{seconds * 1000:8.0f} ms  {json.dumps(spec)}")
    for _, _, spec in slowest[: args.plans]:
        print(f"\nplan of {json.dumps(spec)}:\n{plan(dbname, spec)}")
    conn.close()


if __name__ == "__main__":
    main()
