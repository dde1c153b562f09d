"""``python -m spark``: the warehouse on Spark.

build --raw DIR|s3://bucket/prefix   read new raw objects, dbt build (target spark), publish
sql "select ..."                      one query on the Spark warehouse, rows printed
publish                               publish the marts into PostgreSQL again
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from loader.discovery import parse_moment

log = logging.getLogger("spark")

# unit tests give their rows in the contracts' PostgreSQL types; on Spark the data tests and
# the equality test (tests/spark) check the models. --quiet: the loader logs one line per node
# as it finishes (loader.dbt_step), so dbt's own progress lines would print each node twice;
# dbt's errors (a failing model's message and compiled code) still print, and dbt.log keeps all.
DBT_SPARK_ARGS = ("--target", "spark", "--exclude-resource-type", "unit_test", "--quiet")


def _moment(end: bool):
    def parse(text: str):
        try:
            return parse_moment(text, end=end)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m spark", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="raw objects -> Spark warehouse -> PostgreSQL analytics")
    build.add_argument(
        "--raw", required=True, help="a directory laid out like the bucket, or s3://bucket/prefix"
    )
    build.add_argument(
        "--since", type=_moment(False), help="window start (UTC); default LOADER_LOOKBACK_HOURS ago"
    )
    build.add_argument("--until", type=_moment(True), help="window end (UTC); default now")
    build.add_argument("--no-publish", action="store_true", help="do not publish the marts into PostgreSQL")
    build.add_argument("--full-refresh", action="store_true", help="rebuild the incremental models from raw")
    build.add_argument(
        "--skip-tests", action="store_true", help="build the models without running the data tests"
    )
    sql = sub.add_parser("sql", help="run one query on the Spark warehouse and print its rows")
    sql.add_argument("query", nargs="+", help="a query (several: run in turn, one Spark start)")
    sql.add_argument("--limit", type=int, default=1000, help="rows printed at most (default 1000)")
    sql.add_argument("--tsv", action="store_true", help="tab-separated rows, no header (for scripts)")
    publish = sub.add_parser("publish", help="publish the marts the dashboards read into PostgreSQL")
    publish.add_argument(
        "--all-marts",
        action="store_true",
        help="every mart with a contract, not only what the dashboards read",
    )
    publish.add_argument("--tables", help="these marts (comma-separated) instead")
    return parser


def build(args) -> int:
    from loader.dbt_step import run_dbt_build
    from spark import publish, raw
    from spark.session import ROOT, get_session, jars, warehouse

    started = time.monotonic()
    # what profiles.yml's spark target reads (an empty value counts as unset)
    local = os.environ.get("SPARK_CONFIG", "local") != "platform"
    for name, default in (
        ("SPARK_JARS", jars if local else str),
        ("SPARK_WAREHOUSE", warehouse),
        ("DBT_TARGET_PATH", lambda: str(ROOT / "target" / "spark")),
        ("DBT_LOG_PATH", lambda: str(ROOT / "logs" / "spark")),
    ):
        if not os.environ.get(name):
            os.environ[name] = default()
    spark = get_session()
    summary = raw.load_raw(spark, args.raw, since=args.since, until=args.until)
    raw.set_build_status(spark, summary.load_id, "running", started=True)
    extra = DBT_SPARK_ARGS + (("--full-refresh",) if args.full_refresh else ())
    if args.skip_tests:
        extra += ("--exclude-resource-type", "test")
    outcome = run_dbt_build(ROOT, ROOT, extra_args=extra)
    raw.set_build_status(
        spark, summary.load_id, "success" if outcome.success else "failed", models_built=outcome.models_built
    )
    if not outcome.success:
        log.error("Spark build failed: %s", outcome.error)
        return 1
    if not args.no_publish:
        # load_health reads raw.load_runs: rebuilt so it shows this build's status
        run_dbt_build(
            ROOT, ROOT, extra_args=(*DBT_SPARK_ARGS, "--select", "stg_clickstream__load_runs", "load_health")
        )
        published = publish.publish(spark)
        log.info("Published %d tables into PostgreSQL (%d rows)", len(published), sum(published.values()))
    log.info(
        "Spark build done in %.1f s: %d objects, %d events read",
        time.monotonic() - started,
        summary.objects,
        summary.events,
    )
    return 0


QUERY_SEPARATOR = "\x1e"
"""Between the results of several queries in --tsv mode (ASCII record separator)."""


def sql(args) -> int:
    from spark.session import get_session

    spark = get_session()
    spark.sql("use analytics")  # plain fact_events resolves, as in psql
    for number, query in enumerate(args.query):
        if number and args.tsv:
            print(QUERY_SEPARATOR)
        elif number:
            print()
        _print_query(spark, query, args.limit, args.tsv)
    return 0


def _print_query(spark, query: str, limit: int, tsv: bool) -> None:
    frame = spark.sql(query)
    rows = frame.limit(limit + 1).collect()
    names = frame.columns
    shown = [["" if v is None else str(v) for v in r] for r in rows[:limit]]
    if tsv:
        for r in shown:
            print("\t".join(r))
        return
    widths = [max([len(n)] + [len(r[i]) for r in shown]) for i, n in enumerate(names)]
    print(" | ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for r in shown:
        print(" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))
    more = " (more not shown: --limit)" if len(rows) > limit else ""
    print(f"({len(shown)} row{'s' if len(shown) != 1 else ''}){more}")


def publish_command(args) -> int:
    from spark import publish
    from spark.session import get_session

    if args.tables:
        tables = tuple(t.strip() for t in args.tables.split(",") if t.strip())
    else:
        tables = publish.all_marts() if args.all_marts else publish.PUBLISHED
    published = publish.publish(get_session(), tables)
    for table, rows in published.items():
        print(f"analytics.{table}: {rows} rows")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for noisy in ("py4j", "py4j.clientserver", "SQLQueryContextLogger"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    commands = {"build": build, "sql": sql, "publish": publish_command}
    try:
        return commands[args.command](args)
    except SystemExit:
        raise
    except Exception as exc:  # a clear one-line error, the details in the log above
        log.error(
            "%s failed: %s: %s",
            args.command,
            type(exc).__name__,
            str(exc).splitlines()[0] if str(exc) else "",
        )
        return 1
