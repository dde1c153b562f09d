"""Months of data on one PostgreSQL (issue 19 item 4): raw.clickstream_events and fact_events
partitioned by month, a table from before partitioning converted in place, and retention
(RETENTION_MONTHS) dropping whole old months while the aggregates keep their figures.

Oracles: the catalog (pg_inherits) for the partitions, SQL counts taken before retention for
what it must remove, and a full rebuild of the same raw lines for the marts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import psycopg2
import pytest

from warehouse import rawdata
from warehouse.conftest import load_objects, snapshot_marts

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def month_start(moment: datetime, months_back: int) -> datetime:
    year, month = moment.year, moment.month - months_back
    while month <= 0:
        year, month = year - 1, month + 12
    return datetime(year, month, 1, tzinfo=UTC)


def partitions(env, table: str) -> dict[str, str]:
    """{bound: partition name} of a partitioned table."""
    rows = rawdata.query(
        env,
        "select pg_get_expr(part.relpartbound, part.oid), part.relname from pg_inherits as inherits"
        " join pg_class as part on part.oid = inherits.inhrelid where inherits.inhparent = %s::regclass",
        (table,),
    )
    return dict(rows)


def month_bounds(env, table: str) -> list[date]:
    return sorted(
        date.fromisoformat(bound.split("'")[1][:10]) for bound in partitions(env, table) if bound != "DEFAULT"
    )


def rows_in_default(env, table: str) -> int:
    (name,) = [name for bound, name in partitions(env, table).items() if bound == "DEFAULT"]
    schema = table.split(".")[0]
    return rawdata.query(env, f'select count(*) from {schema}."{name}"')[0][0]  # noqa: S608


def execute(env, sql: str) -> None:
    conn = rawdata.connect(env)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
        conn.commit()
    finally:
        conn.close()


def run_loader(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "loader", *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def traffic_objects(now: datetime) -> list[list[tuple[datetime, list[dict]]]]:
    """Three loads of shop traffic, four months ago, two months ago and yesterday, each loaded
    an hour after its events."""
    batches = []
    for number, start in enumerate(
        (
            month_start(now, 4) + timedelta(days=9),
            month_start(now, 2) + timedelta(days=3),
            now - timedelta(days=1),
        )
    ):
        events = rawdata.shop_traffic(40, seed=300 + number, start=start.replace(hour=0, minute=0, second=0))
        loaded_at = max(datetime.fromisoformat(e["received_at"].replace("Z", "+00:00")) for e in events)
        batches.append([(loaded_at + timedelta(hours=1), events)])
    return batches


@pytest.fixture(scope="module")
def partitioned_warehouse(make_database, dbt):
    """Three months of traffic, built as a shop's cycles build it: a full build, then
    incremental ones; raw's old loads given month partitions as months of running give them."""
    env = make_database()
    rawdata.create_raw_schema(env)
    now = datetime.now(UTC)
    batches = traffic_objects(now)
    load_objects(env, batches[0])
    dbt(env, "build")
    for batch in batches[1:]:
        load_objects(env, batch)
        dbt(env, "build")
    # a running shop's raw gets each month's partition before its lines come; these lines were
    # loaded "in the past", so they went to the default partition: move them as the months would
    execute(
        env,
        "select raw.ensure_month_partitions('raw.clickstream_events', 'loaded_at', 'clickstream_events', true)",
    )
    return env, now, batches


def test_raw_and_fact_events_are_partitioned_by_month(partitioned_warehouse):
    env, now, batches = partitioned_warehouse
    for table in ("raw.clickstream_events", "analytics.fact_events"):
        kind = rawdata.query(env, "select relkind from pg_class where oid = %s::regclass", (table,))[0][0]
        assert kind == "p", table
    this_month = month_start(now, 0).date()
    next_month = (month_start(now, 0) + timedelta(days=32)).replace(day=1).date()
    event_months = {
        row[0]
        for row in rawdata.query(
            env, "select distinct date_trunc('month', event_date)::date from analytics.fact_events"
        )
    }
    bounds = month_bounds(env, "analytics.fact_events")
    # a partition for every month with events, and the months ahead; nothing left in the default
    assert event_months <= set(bounds)
    assert {this_month, next_month} <= set(bounds)
    assert rows_in_default(env, "analytics.fact_events") == 0
    assert rows_in_default(env, "raw.clickstream_events") == 0
    loaded_months = {
        row[0]
        for row in rawdata.query(
            env,
            "select distinct date_trunc('month', loaded_at at time zone 'UTC')::date from raw.clickstream_events",
        )
    }
    assert loaded_months <= set(month_bounds(env, "raw.clickstream_events"))
    # BRIN on the time columns
    indexes = {
        row[0]
        for row in rawdata.query(
            env,
            "select pg_get_indexdef(indexrelid) from pg_index where indrelid in"
            " ('raw.clickstream_events'::regclass, 'analytics.fact_events'::regclass)",
        )
    }
    assert any("USING brin (loaded_at)" in index for index in indexes), indexes
    assert any("USING brin (event_date)" in index for index in indexes), indexes
    # every valid line is one row (the oracle: the raw lines themselves)
    lines = [event for batch in batches for _, events in batch for event in events]
    assert rawdata.query(env, "select count(*) from analytics.fact_events")[0][0] == len(lines)


def test_incremental_builds_on_partitions_equal_a_full_rebuild(partitioned_warehouse, dbt, make_database):
    env, now, batches = partitioned_warehouse
    built = snapshot_marts(env)
    # the same raw lines, built at once in a database of their own
    other = make_database()
    rawdata.create_raw_schema(other)
    for batch in batches:
        load_objects(other, batch)
    dbt(other, "build")
    assert snapshot_marts(other) == built


def test_a_late_event_of_a_month_without_partition_gets_one(partitioned_warehouse, dbt):
    env, now, _ = partitioned_warehouse
    old = month_start(now, 6) + timedelta(days=2, hours=10)
    # received two days after it happened (within the contract's 30 days), loaded only now
    late = rawdata.event(
        "page_view", old, session_id="late-s", anonymous_id="late-a", received_at=old + timedelta(days=2)
    )
    rawdata.insert_raw(env, [late], loaded_at=datetime.now(UTC))
    dbt(env, "build")
    assert old.date().replace(day=1) in month_bounds(env, "analytics.fact_events")
    assert rows_in_default(env, "analytics.fact_events") == 0
    found = rawdata.query(
        env, "select event_date from analytics.fact_events where event_id = %s", (late["event_id"],)
    )
    assert found == [(old.date(),)]


def test_retention_drops_whole_old_months_and_keeps_the_aggregates(partitioned_warehouse, dbt):
    env, now, _ = partitioned_warehouse
    cutoff = month_start(now, 3).date()
    # the oracle, counted before: what retention must remove and what must stay
    old_events = rawdata.query(
        env, "select count(*) from analytics.fact_events where event_date < %s", (cutoff,)
    )[0][0]
    old_lines = rawdata.query(
        env, "select count(*) from raw.clickstream_events where loaded_at < %s", (cutoff,)
    )[0][0]
    kept_events = rawdata.query(
        env, "select count(*) from analytics.fact_events where event_date >= %s", (cutoff,)
    )[0][0]
    hourly_before = rawdata.query(env, "select sum(events) from analytics.agg_events_hourly")[0][0]
    assert old_events > 0 and old_lines > 0 and kept_events > 0

    dry = run_loader(env, "retention", "--months", "3", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["rows"] == old_events + old_lines
    assert json.loads(dry.stdout)["status"] == "dry run"
    assert (
        rawdata.query(env, "select count(*) from analytics.fact_events where event_date < %s", (cutoff,))[0][
            0
        ]
        == old_events
    )

    # the daily full check applies it, after its tests
    result = run_loader({**env, "RETENTION_MONTHS": "3"}, "check", "--json")
    assert result.returncode == 0, result.stderr
    check = json.loads(result.stdout.strip().splitlines()[-1])  # after dbt's own output
    assert check["status"] == "passed", check
    summary = check["retention"]
    assert summary["status"] == "dropped", summary
    assert summary["kept_since"] == cutoff.isoformat()
    assert summary["rows"] == old_events + old_lines
    assert (
        rawdata.query(env, "select count(*) from analytics.fact_events where event_date < %s", (cutoff,))[0][
            0
        ]
        == 0
    )
    assert (
        rawdata.query(env, "select count(*) from raw.clickstream_events where loaded_at < %s", (cutoff,))[0][
            0
        ]
        == 0
    )
    assert rawdata.query(env, "select count(*) from analytics.fact_events")[0][0] == kept_events
    # whole partitions went: none left for a month before the cutoff
    assert min(month_bounds(env, "analytics.fact_events")) >= cutoff
    assert min(month_bounds(env, "raw.clickstream_events")) >= cutoff
    assert (
        rawdata.query(env, "select sum(rows_removed) from raw.retention_drops")[0][0]
        == old_events + old_lines
    )
    # the aggregates keep the months whose events are gone
    assert rawdata.query(env, "select sum(events) from analytics.agg_events_hourly")[0][0] == hourly_before

    # the health bar says since when events are kept
    sys.path.insert(0, os.path.join(PROJECT_ROOT, "shiny"))
    from queries.health import data_health

    conn = psycopg2.connect(
        host=env["PGHOST"],
        port=env["PGPORT"],
        user=env["PGUSER"],
        password=env["PGPASSWORD"],
        dbname=env["PGDATABASE"],
    )
    try:
        result = data_health(conn)
    finally:
        conn.close()
    assert result.error is None, result.error
    health = result.df.iloc[0]
    kept_since = pd.Timestamp(health["events_kept_since"]).date()
    assert kept_since == min(month_bounds(env, "analytics.fact_events"))
    assert pd.Timestamp(health["first_date"]).date() < kept_since

    # run again: nothing more goes; the cycles go on
    again = run_loader(env, "retention", "--months", "3", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["status"] == "nothing"
    fresh = rawdata.event(
        "page_view", now - timedelta(minutes=3), session_id="after-s", anonymous_id="after-a"
    )
    rawdata.insert_raw(env, [fresh], loaded_at=datetime.now(UTC))
    dbt(env, "build")
    assert (
        rawdata.query(
            env, "select count(*) from analytics.fact_events where event_id = %s", (fresh["event_id"],)
        )[0][0]
        == 1
    )


def test_retention_refuses_a_bad_setting(partitioned_warehouse):
    env, _, _ = partitioned_warehouse
    result = run_loader({**env, "RETENTION_MONTHS": "half"}, "retention")
    assert result.returncode != 0
    assert "RETENTION_MONTHS must be a number" in result.stderr
    result = run_loader({**env, "RETENTION_MONTHS": ""}, "retention")
    assert result.returncode != 0
    assert "set RETENTION_MONTHS or give --months" in result.stderr


def test_tables_from_before_partitioning_become_default_partitions(make_database, dbt):
    """An existing warehouse upgrades in place: its raw table and fact_events become the default
    partitions of new partitioned tables (no row rewritten, no full refresh), and new months get
    partitions of their own."""
    env = make_database()
    now = datetime.now(UTC)
    conn = rawdata.connect(env)
    with conn.cursor() as cur:  # raw as the loader made it before partitioning
        cur.execute(
            "create schema raw; create table raw.clickstream_events (payload jsonb not null, bucket text not null,"
            " object_key text not null, line_number integer not null, object_etag text not null,"
            " load_id uuid not null, loaded_at timestamptz not null default now());"
            " create index clickstream_events_loaded_at_idx on raw.clickstream_events (loaded_at)"
        )
    conn.commit()
    conn.close()
    first = rawdata.shop_traffic(20, seed=41, start=month_start(now, 2) + timedelta(days=4))
    rawdata.insert_raw(env, first, loaded_at=month_start(now, 2) + timedelta(days=5))
    rawdata.create_raw_schema(env)  # the loader's migration
    assert rows_in_default(env, "raw.clickstream_events") == len(first)
    dbt(env, "build")
    # fact_events as a build from before partitioning left it: a plain table
    execute(
        env,
        "create table analytics.fact_events_plain as select * from analytics.fact_events;"
        " drop table analytics.fact_events; alter table analytics.fact_events_plain rename to fact_events;"
        " create unique index on analytics.fact_events (event_id)",
    )
    second = rawdata.shop_traffic(20, seed=42, start=now - timedelta(days=1))
    rawdata.insert_raw(env, second, loaded_at=now)
    dbt(env, "build")
    assert (
        rawdata.query(env, "select relkind from pg_class where oid = 'analytics.fact_events'::regclass")[0][0]
        == "p"
    )
    # the old table is the default partition, with every row it had (this run's too: the
    # conversion follows the insert); the month ahead gets a partition of its own
    assert rows_in_default(env, "analytics.fact_events") == len(first) + len(second)
    assert rawdata.query(env, "select count(*) from analytics.fact_events")[0][0] == len(first) + len(second)
    next_month = (month_start(now, 0) + timedelta(days=32)).replace(day=1).date()
    assert next_month in month_bounds(env, "analytics.fact_events")
    # equal to a full rebuild of the same lines
    upgraded = snapshot_marts(env)
    dbt(env, "build", "--full-refresh")
    assert snapshot_marts(env) == upgraded
    assert rows_in_default(env, "analytics.fact_events") == 0


def brin_ranges_left_unsummarized(env, table: str) -> dict[str, int]:
    """{BRIN index of a partition: page ranges it had not summarized}. Summarizing them is the
    oracle's way to count them (brin_summarize_new_values: 0 when every range has a summary)."""
    rows = rawdata.query(
        env,
        "select index_class.relname, brin_summarize_new_values(index_class.oid)"
        " from pg_index as index_def"
        " join pg_class as index_class on index_class.oid = index_def.indexrelid"
        " join pg_am as access_method on access_method.oid = index_class.relam"
        " where access_method.amname = 'brin' and index_class.relkind = 'i'"
        " and index_def.indrelid in (select inhrelid from pg_inherits where inhparent = %s::regclass)",
        (table,),
    )
    assert rows, f"no BRIN index on the partitions of {table}"
    return dict(rows)


def test_builds_leave_no_brin_range_unsummarized(make_database, dbt):
    """A BRIN scan reads every page range its index has not summarized, whatever the filter:
    left to autovacuum (after inserts of a fifth of a partition), each cycle's reads of its
    loaded_at window would read days of raw. Every build summarizes raw's new ranges before it
    reads them, and fact_events' after writing them (autovacuum off here, so only the build can)."""
    env = make_database()
    rawdata.create_raw_schema(env)
    now = datetime.now(UTC).replace(microsecond=0)
    first = rawdata.shop_traffic(150, seed=41, start=now - timedelta(hours=30))
    load_objects(env, [(now - timedelta(hours=2), first)])
    dbt(env, "build")
    # autovacuum off on every partition: only a build may summarize their ranges
    execute(
        env,
        "do $$ declare part regclass; begin for part in select inhrelid::regclass from pg_inherits"
        " where inhparent in ('raw.clickstream_events'::regclass, 'analytics.fact_events'::regclass) loop"
        " execute format('alter table %s set (autovacuum_enabled = off)', part); end loop; end $$",
    )
    # a cycle's worth of new lines: hundreds of pages, dozens of 32-page ranges
    second = rawdata.shop_traffic(150, seed=42, start=now - timedelta(hours=1))
    load_objects(env, [(now - timedelta(minutes=30), second)])
    dbt(env, "build")
    for table in ("raw.clickstream_events", "analytics.fact_events"):
        left = brin_ranges_left_unsummarized(env, table)
        assert set(left.values()) == {0}, (table, left)
    assert rawdata.query(env, "select count(*) from analytics.fact_events")[0][0] == len(first) + len(second)
    # the oracle's control: the same kind of insert without a build leaves ranges to summarize
    load_objects(env, [(now - timedelta(minutes=10), rawdata.shop_traffic(150, seed=43, start=now))])
    assert sum(brin_ranges_left_unsummarized(env, "raw.clickstream_events").values()) > 0
