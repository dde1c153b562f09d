"""dbt build on an empty raw table, the database's search_path, and the roles as in AWS: the
dashboards' read-only role (SELECT on analytics only but the quarantine's payloads, nothing in
raw, no writes, no scratch tables, no other database) and the ETL role, no superuser, that runs a
whole load and build."""

from __future__ import annotations

import json
import subprocess
import sys

import psycopg2
import pytest

from tests.conftest import PROJECT_ROOT, pg_connect
from warehouse import rawdata

MARTS = [
    "fact_events",
    "fact_order_items",
    "fact_sessions",
    "fact_funnels",
    "dim_products",
    "dim_users",
    "agg_events_hourly",
    "agg_product_daily",
    "agg_product_daily_totals",
    "agg_funnel_daily",
    "agg_time_to_purchase_daily",
    "agg_campaign_daily",
    "rejected_events",
    "load_health",
]


def test_build_on_an_empty_raw_table(fresh_db, dbt):
    rawdata.create_raw_schema(fresh_db)
    dbt(fresh_db, "build")
    for mart in MARTS:
        assert rawdata.query(fresh_db, f"select count(*) from analytics.{mart}") == [(0,)], mart  # noqa: S608
    # the next build, with data, is incremental and picks everything up
    rawdata.insert_raw(fresh_db, rawdata.shop_traffic(20, seed=3))
    dbt(fresh_db, "build")
    [(events,)] = rawdata.query(fresh_db, "select count(*) from analytics.fact_events")
    [(raw,)] = rawdata.query(fresh_db, "select count(*) from raw.clickstream_events")
    assert events == raw > 0


def test_plain_fact_events_resolves_through_the_search_path(generated_warehouse):
    env, *_rest = generated_warehouse
    conn = pg_connect(env)
    try:
        with conn.cursor() as cur:
            cur.execute("show search_path")
            assert "analytics" in cur.fetchone()[0]
            cur.execute("select count(*) from fact_events")
            assert cur.fetchone()[0] > 0
    finally:
        conn.close()


@pytest.fixture
def reader(generated_warehouse):
    env, *_rest = generated_warehouse
    conn = pg_connect(env, user=env["DASHBOARD_PGUSER"], password=env["DASHBOARD_PGPASSWORD"])
    conn.autocommit = True
    yield conn
    conn.close()


def test_reader_selects_the_marts(reader):
    with reader.cursor() as cur:
        for mart in MARTS:
            cur.execute(f"select count(*) from analytics.{mart}")  # noqa: S608
        cur.execute("select count(*) from fact_events")  # the role's own search_path
        assert cur.fetchone()[0] > 0


@pytest.mark.parametrize(
    "statement",
    [
        "insert into analytics.fact_events (event_id) values ('x')",
        "update analytics.fact_events set event_name = 'x'",
        "delete from analytics.fact_events",
        "truncate analytics.dim_users",
        "create table analytics.scratch (a integer)",
        "create table public.scratch (a integer)",
        "create schema scratch",
        "drop table analytics.dim_products",
        "select count(*) from raw.clickstream_events",
        "select count(*) from raw.load_runs",
        "select count(*) from staging.stg_clickstream__events",
        "select count(*) from intermediate.int_users_stitched",
    ],
)
def test_reader_cannot_write_or_read_outside_analytics(reader, statement):
    """Past its read-only default too (a session may turn that off): privileges refuse."""
    with reader.cursor() as cur:
        cur.execute("set default_transaction_read_only = off")
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute(statement)


def test_reader_is_read_only_by_default_and_may_not_create_temporary_tables(reader):
    with reader.cursor() as cur:
        cur.execute("show default_transaction_read_only")
        assert cur.fetchone() == ("on",)
        with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
            cur.execute("create temporary table scratch (a integer)")
        # a read-write transaction asked for explicitly: still no TEMP on the database
        cur.execute("set default_transaction_read_only = off")
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("create temporary table scratch (a integer)")


@pytest.mark.parametrize("database", ["postgres", "template1"])
def test_reader_connects_to_the_warehouse_database_only(generated_warehouse, database):
    env, *_rest = generated_warehouse
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        pg_connect(env, user=env["DASHBOARD_PGUSER"], password=env["DASHBOARD_PGPASSWORD"], dbname=database)


def test_reader_reads_the_refusals_reasons_and_counts_not_their_payloads(reader):
    with reader.cursor() as cur:
        cur.execute(
            "select reason, count(*), max(loaded_at) is not null from analytics.rejected_events group by 1"
        )
        refusals = cur.fetchall()
        assert refusals, "the generated traffic holds invalid events"
        cur.execute(
            "select raw_line_id, event_id, event_name, event_timestamp from analytics.rejected_events"
        )
        assert len(cur.fetchall()) == sum(count for _, count, _ in refusals)
        for statement in (
            "select payload from analytics.rejected_events",
            "select * from analytics.rejected_events",
            "select count(*) from analytics.rejected_events where payload ? 'anonymous_id'",
        ):
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(statement)


def test_a_whole_load_and_build_runs_as_the_etl_role_which_is_no_superuser(fresh_db, s3_env, s3_client):
    env = dict(s3_env, PGDATABASE=fresh_db["PGDATABASE"])
    [role] = rawdata.query(
        env,
        "select r.rolsuper, r.rolcreatedb, r.rolcreaterole, pg_get_userbyid(d.datdba)"
        " from pg_roles as r, pg_database as d"
        " where r.rolname = current_user and d.datname = current_database()",
    )
    assert role == (False, False, False, env["PGUSER"])

    events = rawdata.shop_traffic(10, seed=11)
    lines = [json.dumps(event) for event in events] + [
        json.dumps({"event_name": "page_view", "event_id": "x"})
    ]
    s3_client.put_object(
        Bucket=env["RAW_BUCKET"], Key="events/2026/03/02/09/part-0.json", Body="\n".join(lines).encode()
    )
    work = PROJECT_ROOT / ".local" / "dbt-test" / env["PGDATABASE"]
    env.update(DBT_TARGET_PATH=str(work / "target"), DBT_LOG_PATH=str(work / "logs"))
    for name in ("DB_SECRET_ARN", "AWS_LAMBDA_FUNCTION_NAME", "DBT_PROJECT_DIR", "DBT_PROFILES_DIR"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-m", "loader", "load", "--since", "2026-03-02", "--until", "2026-03-02"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    assert rawdata.query(env, "select count(*) from analytics.fact_events") == [(len(events),)]
    assert rawdata.query(env, "select count(*) from analytics.rejected_events") == [(1,)]
    owners = rawdata.query(
        env,
        "select distinct pg_get_userbyid(c.relowner) from pg_class as c"
        " inner join pg_namespace as n on c.relnamespace = n.oid"
        " where n.nspname in ('raw', 'staging', 'intermediate', 'analytics')",
    )
    assert owners == [(env["PGUSER"],)]
