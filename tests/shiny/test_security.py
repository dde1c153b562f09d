"""SQL injection through every input changes nothing and returns no extra rows; the
dashboards' role can only read the marts."""

from __future__ import annotations

import known_events as k
import psycopg2
import pytest
import queries

START, END = k.FIRST_DATE, k.LAST_DATE
ATTACKS = [
    "' or '1'='1",
    "mobile' or 1=1 --",
    "x'); drop table analytics.fact_events; --",
    "mobile'::text[] is null or true --",
    "'; insert into analytics.dim_products (product_id) values ('evil'); --",
    "\\'; select pg_sleep(5); --",
    'desktop" or "1"="1',
]
MART_COUNTS_SQL = """
select (select count(*) from analytics.fact_events), (select count(*) from analytics.dim_products),
       (select count(*) from analytics.agg_events_hourly), (select count(*) from analytics.agg_product_daily)
"""


def _counts(admin):
    with admin.cursor() as cur:
        cur.execute(MART_COUNTS_SQL)
        return cur.fetchone()


def _calls(attack: str):
    """Every query function, with the attack string in each of its text inputs."""
    a = [attack]
    yield "funnel devices", lambda c: queries.funnel_steps(c, START, END, a, None), "sessions"
    yield "funnel sources", lambda c: queries.funnel_steps(c, START, END, None, a), "sessions"
    yield "breakdown devices", lambda c: queries.funnel_breakdown(c, START, END, "week", a), None
    yield (
        "time to convert",
        lambda c: queries.funnel_time_to_convert(c, START, END, a, a),
        "purchasing_sessions",
    )
    yield "events names", lambda c: queries.events_per_day(c, START, END, a), None
    yield "events devices", lambda c: queries.events_per_day(c, START, END, None, a), None
    yield "events sources", lambda c: queries.events_per_day(c, START, END, None, None, a), None
    yield "products categories", lambda c: queries.product_performance(c, START, END, categories=a), None
    yield "products brands", lambda c: queries.product_performance(c, START, END, brands=a), None
    yield "products devices", lambda c: queries.product_performance(c, START, END, devices=a), None
    yield "rollup brands", lambda c: queries.product_rollup(c, START, END, "product_brand", brands=a), None
    yield "rare categories", lambda c: queries.rarely_viewed_products(c, START, END, categories=a), None
    yield "hourly names", lambda c: queries.events_by_hour(c, START, END, "UTC", a), None
    yield "heatmap sources", lambda c: queries.hour_weekday_heatmap(c, START, END, "UTC", None, None, a), None
    yield (
        "activity devices",
        lambda c: queries.activity_breakdown(c, START, END, "device_type", "UTC", None, a),
        None,
    )
    yield "weekday sources", lambda c: queries.conversion_by_weekday(c, START, END, None, a), None
    yield "campaign devices", lambda c: queries.campaign_sessions_per_day(c, START, END, a), None


@pytest.mark.parametrize("attack", ATTACKS)
def test_injection_through_text_inputs_returns_nothing_and_changes_nothing(reader, admin, attack):
    before = _counts(admin)
    for label, call, count_column in _calls(attack):
        result = call(reader)
        if count_column:
            assert int(result.df[count_column].fillna(0).sum()) == 0, label
        else:
            assert result.empty, label
        assert attack.replace("'", "''") in result.sql, label  # bound as a quoted literal
    assert _counts(admin) == before


@pytest.mark.parametrize("attack", ATTACKS)
def test_injection_through_time_zone_stays_a_value(reader, admin, attack):
    """The time zone is a bound value: PostgreSQL either rejects it or reads it as a (POSIX)
    zone name; it never adds rows (the app also accepts only zones from a fixed list)."""
    before = _counts(admin)
    try:
        result = queries.hour_weekday_heatmap(reader, START, END, attack)
    except psycopg2.DataError:
        pass
    else:
        assert attack.replace("'", "''") in result.sql
        assert int(result.df["events"].sum()) <= len(k.all_events())
    assert _counts(admin) == before


@pytest.mark.parametrize("attack", ATTACKS[:3] + ["device_type; drop table analytics.fact_events"])
def test_identifiers_come_only_from_whitelists(reader, attack):
    with pytest.raises(ValueError):
        queries.funnel_breakdown(reader, START, END, attack)
    with pytest.raises(ValueError):
        queries.activity_breakdown(reader, START, END, attack)
    with pytest.raises(ValueError):
        queries.product_rollup(reader, START, END, attack)
    with pytest.raises(ValueError):
        queries.product_performance(reader, START, END, rank_by=attack)


def test_injection_through_numbers_and_dates_is_rejected(reader):
    with pytest.raises((ValueError, ArithmeticError)):
        queries.product_performance(reader, START, END, price_min="1; drop table analytics.dim_products")
    with pytest.raises(psycopg2.DataError):
        queries.funnel_steps(reader, "2026-03-02'; drop table analytics.fact_events; --", END)


WRITES = [
    "insert into analytics.dim_products (product_id) values ('evil')",
    "update analytics.fact_events set event_name = 'x'",
    "delete from analytics.agg_events_hourly",
    "truncate analytics.fact_sessions",
    "drop table analytics.fact_events",
    "create table analytics.evil (x int)",
    "create table public.evil (x int)",
    "create schema evil",
]
READS_OUTSIDE_ANALYTICS = [
    "select count(*) from raw.clickstream_events",
    "select count(*) from raw.load_runs",
    "select count(*) from raw.rejected_lines",
    "select count(*) from staging.stg_clickstream__events",
]


def _reader_session(known_db):
    """A plain (not read-only-session) connection as the dashboards' role, autocommit."""
    from shiny_testlib import pg_connect

    conn = pg_connect(known_db, user=known_db["DASHBOARD_PGUSER"], password=known_db["DASHBOARD_PGPASSWORD"])
    conn.autocommit = True
    return conn


@pytest.mark.parametrize("statement", WRITES)
def test_read_only_role_cannot_write_or_create(known_db, admin, statement):
    """Two locks: the role is read-only by default, and a session that turns that off still has
    no privilege to write or create."""
    before = _counts(admin)
    conn = _reader_session(known_db)
    try:
        with conn.cursor() as cur:
            with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
                cur.execute(statement)
            cur.execute("set default_transaction_read_only = off")
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(statement)
    finally:
        conn.close()
    assert _counts(admin) == before


@pytest.mark.parametrize("statement", READS_OUTSIDE_ANALYTICS)
def test_read_only_role_cannot_read_raw_or_staging(known_db, admin, statement):
    before = _counts(admin)
    conn = _reader_session(known_db)
    try:
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute(statement)
    finally:
        conn.close()
    assert _counts(admin) == before


def test_read_only_role_reads_the_marts(reader):
    with reader.cursor() as cur:
        cur.execute("select count(*) from analytics.fact_events")
        assert cur.fetchone()[0] == len(k.all_events())
