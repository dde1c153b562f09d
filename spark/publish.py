"""Publish the marts the dashboards read from the Spark warehouse into PostgreSQL's analytics
schema, so the dashboards work unchanged (and at their usual speed) after a Spark build.

Each table is swapped in one transaction: a new table is filled by COPY, given the mart's
indexes (models/marts/_marts__models.yml), then replaces the old one (table or view) under
its name; a dashboard query sees the old table or the new one, never a half-filled one.
Column types are the marts' contracts (the same yml), so the published tables are the ones
a PostgreSQL build makes."""

from __future__ import annotations

import ast
import io
import json
import logging
import re
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
    "agg_paths_daily",
    "agg_retention_weekly",
    "fact_attribution",
    "dim_products",
    "fact_session_sequences",
    "fact_order_items",
    "rejected_events",
    "load_health",
    "dashboard_settings",
)
"""What the dashboards read (shiny/queries/), and what the funnel engine reads
(analytics.funnel: fact_session_sequences, fact_order_items, dim_products), which publish()
installs with them."""
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
    return tuple(
        name for name, spec in mart_contracts().items() if name not in ("load_health", "full_checks")
    )


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def dashboard_reader_hidden_columns() -> dict[str, list[str]]:
    """{mart: [column]} the dashboards' role may not read: the dbt macro of that name
    (dbt_project/macros/dashboard_reader_columns.sql) is the one place that says it."""
    macro = (ROOT / "dbt_project" / "macros" / "dashboard_reader_columns.sql").read_text()
    found = re.search(r"macro dashboard_reader_hidden_columns\(\).*?return\((\{.*?\})\)", macro, re.DOTALL)
    if not found:
        raise SystemExit("dashboard_reader_hidden_columns() not found in dashboard_reader_columns.sql")
    return ast.literal_eval(found.group(1))


def reader_grants(
    table: str, columns: list[str], reader_role: str, hidden: dict[str, list[str]]
) -> list[str]:
    """The statements that let the dashboards' role read a published table as a dbt build
    does: the whole table, or, for a table with hidden columns, every column but those (the
    schema's default privileges grant the whole table to a new one: that grant is revoked)."""
    target = f"analytics.{_ident(table)}"
    role = _ident(reader_role)
    if table not in hidden:
        return [f"grant select on {target} to {role}"]
    visible = [name for name in columns if name not in hidden[table]]
    statements = [f"revoke select on {target} from {role}"]  # noqa: S608
    if visible:
        statements.append(f"grant select ({', '.join(_ident(n) for n in visible)}) on {target} to {role}")
    return statements


def _copy_line_sql(name: str, data_type: str = "text") -> str:
    """A column as COPY text: NULL as \\N; backslash, tab, newline and CR escaped; timestamps in
    UTC (the session time zone), decimals and JSON as written; an array as PostgreSQL's array
    literal ({a,NULL,"b c"}: texts quoted, quotes and backslashes escaped)."""
    if data_type.endswith("[]"):
        if data_type.startswith(("text", "varchar", "character")):
            element = r"""concat('"', replace(replace(v, r'\', r'\\'), '"', r'\"'), '"')"""
        else:
            element = "cast(v as string)"
        text = (
            f"case when `{name}` is not null then concat('{{', array_join("
            f"transform(`{name}`, v -> case when v is null then 'NULL' else {element} end), ','), '}}') end"
        )
    else:
        text = f"cast(`{name}` as string)"
    for char, escaped in (
        (r"r'\'", r"r'\\'"),
        ("char(9)", r"r'\t'"),
        ("char(10)", r"r'\n'"),
        ("char(13)", r"r'\r'"),
    ):
        text = f"replace({text}, {char}, {escaped})"
    return f"coalesce({text}, r'\\N')"


def _spark_lines(spark, table: str, columns: list[tuple[str, str]]):
    """The Spark table's rows as COPY text lines, built by Spark (one string per row)."""
    line = (
        "concat_ws(char(9), "
        + ", ".join(_copy_line_sql(name, data_type) for name, data_type in columns)
        + ")"
    )
    return spark.sql(f"select {line} as line from analytics.{table}").toLocalIterator()  # noqa: S608


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
        for row in _spark_lines(spark, table, columns):
            buffer.write(row[0])
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
            method = f"using {_ident(index['type'])} " if index.get("type") else ""
            cur.execute(
                f"create {unique}index {_ident(f'{table}__p{number}')} on analytics.{_ident(staging)} {method}({cols})"
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
                names = [name for name, _ in columns]
                for statement in reader_grants(table, names, reader_role, dashboard_reader_hidden_columns()):
                    cur.execute(statement)
        cur.execute(f"analyze analytics.{_ident(table)}")
    conn.commit()
    log.info("Published analytics.%s: %d rows in %.1f s", table, rows, time.monotonic() - started)
    return rows


def publish(spark, tables=PUBLISHED, reader_role: str | None = "clickstream_reader") -> dict[str, int]:
    """Publish ``tables`` into the PG* database; {table: rows}."""
    from loader.db import connect  # PG*, or DB_SECRET_ARN in AWS as the ETL Lambda reads it

    contracts = mart_contracts()
    unknown = [t for t in tables if t not in contracts]
    if unknown:
        raise SystemExit(
            f"not a mart with a contract in models/marts/_marts__models.yml: {', '.join(unknown)}"
        )
    conn = connect()
    try:
        published = {t: publish_table(spark, conn, t, contracts[t], reader_role) for t in tables}
        if "fact_session_sequences" in tables:
            install_funnel_engine(conn, reader_role)
        return published
    finally:
        conn.close()


def _dbt_vars() -> dict:
    return yaml.safe_load((ROOT / "dbt_project.yml").read_text()).get("vars", {})


def funnel_engine_statement(reader_role: str | None) -> str:
    """The statement that installs analytics.funnel as a PostgreSQL build's on-run-end hook does:
    the dbt macro install_funnel_engine (dbt_project/macros/funnel_engine.sql), rendered here with
    the project's vars, since a Spark build has no PostgreSQL target to run it."""
    import jinja2

    source = (ROOT / "dbt_project" / "macros" / "funnel_engine.sql").read_text()

    def body(name: str) -> str:
        pattern = r"{%\s*macro " + re.escape(name) + r"\(\)\s*-?%}(.*?){%-?\s*endmacro\s*%}"
        found = re.search(pattern, source, re.S)
        if not found:
            raise SystemExit(f"no macro {name} in dbt_project/macros/funnel_engine.sql")
        return found.group(1)

    settings = _dbt_vars()
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    codes = {name: letters[i] for i, name in enumerate(settings["known_event_names"])}
    env = jinja2.Environment(autoescape=False)  # noqa: S701 (SQL, not HTML)
    context = {
        "var": lambda name, default=None: (
            reader_role if name == "dashboard_role" and reader_role else settings.get(name, default)
        ),
        "tojson": lambda value: json.dumps(value, sort_keys=True),
        "funnel_event_codes": lambda: codes,
    }
    context["funnel_engine_sql"] = lambda: env.from_string(body("funnel_engine_sql")).render(**context)
    return env.from_string(body("postgres__install_funnel_engine")).render(**context)


def install_funnel_engine(conn, reader_role: str | None) -> None:
    with conn.cursor() as cur:
        cur.execute(funnel_engine_statement(reader_role))
    conn.commit()
    log.info("Installed analytics.funnel")
