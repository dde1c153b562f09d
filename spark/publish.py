"""Publish the marts the dashboards read from the Spark warehouse into PostgreSQL's analytics
schema, so the dashboards work unchanged (and at their usual speed) after a Spark build.

Each table is swapped in one transaction: a new table is filled by COPY, given the mart's
indexes (models/marts/_marts__models.yml), then replaces the old one (table or view) under
its name; a dashboard query sees the old table or the new one, never a half-filled one.
Column types are the marts' contracts (the same yml), so the published tables are the ones
a PostgreSQL build makes."""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path

import yaml

log = logging.getLogger("spark.publish")

ROOT = Path(__file__).resolve().parent.parent
PUBLISHED = (
    "agg_events_hourly",
    "agg_product_daily",
    "agg_product_daily_totals",
    "agg_funnel_daily",
    "agg_time_to_purchase_daily",
    "agg_campaign_daily",
    "dim_products",
    "rejected_events",
    "load_health",
    "dashboard_settings",
)
"""What the dashboards read (shiny/queries/)."""
BATCH_ROWS = 50_000


def mart_contracts() -> dict[str, dict]:
    """{model: {"columns": [(name, data_type)], "indexes": [...]}} from the marts' yml."""
    spec = yaml.safe_load((ROOT / "models" / "marts" / "_marts__models.yml").read_text())
    out = {}
    for model in spec["models"]:
        columns = [(c["name"], c.get("data_type")) for c in model.get("columns", [])]
        out[model["name"]] = {"columns": columns, "indexes": (model.get("config") or {}).get("indexes", [])}
    return out


def all_marts() -> tuple[str, ...]:
    """Every mart with a contract (the equality test publishes them all)."""
    return tuple(name for name, spec in mart_contracts().items() if name != "load_health")


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _copy_text(value) -> str:
    if value is None:
        return "\\N"
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _spark_rows(spark, table: str, columns: list[tuple[str, str]]):
    """The Spark table's rows with every column as text PostgreSQL reads back exactly:
    timestamps in UTC (the session time zone), decimals and JSON as written."""
    selects = [f"cast(`{name}` as string) as `{name}`" for name, _ in columns]
    return spark.sql(f"select {', '.join(selects)} from analytics.{table}").toLocalIterator()  # noqa: S608


def publish_table(spark, conn, table: str, contract: dict, reader_role: str | None) -> int:
    columns = contract["columns"]
    missing = [name for name, data_type in columns if not data_type]
    if missing:
        raise SystemExit(f"analytics.{table}: no data_type in the yml for {', '.join(missing)}")
    staging = f"{table}__publishing"
    rows = 0
    started = time.monotonic()
    with conn.cursor() as cur:
        cur.execute("set local time zone 'UTC'")
        cur.execute("create schema if not exists analytics")
        cur.execute(f"drop table if exists analytics.{_ident(staging)}")
        cur.execute(
            f"create table analytics.{_ident(staging)} ("
            + ", ".join(f"{_ident(n)} {t}" for n, t in columns)
            + ")"
        )
        buffer = io.StringIO()
        column_list = ", ".join(_ident(n) for n, _ in columns)
        for row in _spark_rows(spark, table, columns):
            buffer.write("\t".join(_copy_text(v) for v in row))
            buffer.write("\n")
            rows += 1
            if rows % BATCH_ROWS == 0:
                buffer.seek(0)
                cur.copy_expert(f"copy analytics.{_ident(staging)} ({column_list}) from stdin", buffer)
                buffer = io.StringIO()
        buffer.seek(0)
        cur.copy_expert(f"copy analytics.{_ident(staging)} ({column_list}) from stdin", buffer)
        for number, index in enumerate(contract["indexes"], 1):
            unique = "unique " if index.get("unique") else ""
            cols = ", ".join(_ident(c) for c in index["columns"])
            cur.execute(
                f"create {unique}index {_ident(f'{table}__p{number}')} on analytics.{_ident(staging)} ({cols})"
            )
        # what is there now under the name: a table (earlier publish or PostgreSQL build) or a view
        cur.execute(
            "select c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = 'analytics' and c.relname = %s",
            (table,),
        )
        found = cur.fetchone()
        if found:
            kind = "view" if found[0] == "v" else "materialized view" if found[0] == "m" else "table"
            cur.execute(f"drop {kind} analytics.{_ident(table)} cascade")
        cur.execute(f"alter table analytics.{_ident(staging)} rename to {_ident(table)}")
        for number, _ in enumerate(contract["indexes"], 1):
            cur.execute(
                f"alter index analytics.{_ident(f'{table}__p{number}')} rename to {_ident(f'{table}__idx{number}')}"
            )
        if reader_role:
            cur.execute("select 1 from pg_roles where rolname = %s", (reader_role,))
            if cur.fetchone():
                cur.execute(f"grant select on analytics.{_ident(table)} to {_ident(reader_role)}")
        cur.execute(f"analyze analytics.{_ident(table)}")
    conn.commit()
    log.info("Published analytics.%s: %d rows in %.1f s", table, rows, time.monotonic() - started)
    return rows


def publish(spark, tables=PUBLISHED, reader_role: str | None = "clickstream_reader") -> dict[str, int]:
    """Publish ``tables`` into the PG* database; {table: rows}."""
    from loader.db import connect  # PG*, or DB_SECRET_ARN in AWS as the ETL Lambda reads it

    contracts = mart_contracts()
    conn = connect()
    try:
        return {t: publish_table(spark, conn, t, contracts[t], reader_role) for t in tables}
    finally:
        conn.close()
