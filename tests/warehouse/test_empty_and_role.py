"""dbt build on an empty raw table, the database's search_path, and the dashboards'
read-only role: SELECT on analytics only, nothing in raw, no writes."""

from __future__ import annotations

import psycopg2
import pytest

from tests.conftest import pg_connect
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
    with reader.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
        cur.execute(statement)
