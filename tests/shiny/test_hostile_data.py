"""Raw lines no client clock or number should break the dashboards with (issue 32, item 4), put
straight into the raw table as a bucket written by another way than the ingest endpoint would:
an event at 9999-12-31T23:59:59-01:00 (10000-01-01 in UTC), hundreds of far-future months, a
purchase of revenue 1e308, and a day of real orders whose total passes 10^12. The warehouse
quarantines the first three, so no mart holds a month the shop has not lived, and every page
opens with no widget error, the date filter's bounds and the health bar on the known data."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import known_events as k
import pytest
import queries
import test_app_browser as ui
from playwright.sync_api import expect
from shiny.playwright import controller
from shiny_testlib import pg_connect, reader_connect

from conftest import build_warehouse

pytestmark = pytest.mark.browser
BIG_DAY = k.FIRST_DATE  # the known data's first day: inside the dashboards' default range
BIG_ORDERS = 1001
BIG_REVENUE = 999_999_999.99  # just inside the contract's bound on one amount


def event(name: str, at: str, received_at: str | None, **fields) -> dict:
    payload = {
        "event_id": str(uuid.uuid4()),
        "event_name": name,
        "event_timestamp": at,
        "anonymous_id": "anon-hostile",
        "session_id": "s-hostile",
        "schema_version": "1",
        "device": {"type": "desktop", "user_agent": "Mozilla/5.0"},
        **fields,
    }
    if received_at:
        payload["received_at"] = received_at
    return payload


def hostile_lines() -> tuple[list[dict], int]:
    """(the lines, how many of them the warehouse must quarantine)"""
    day = BIG_DAY.isoformat()
    quarantined = [
        event("page_view", "9999-12-31T23:59:59-01:00", f"{day}T10:00:00Z"),
        event(
            "purchase",
            f"{day}T10:00:00Z",
            f"{day}T10:00:01Z",
            order={"order_id": "o-huge", "revenue": 1e308, "items": [{"product_id": "p-x", "price": 1e308}]},
        ),
        # a raw line without received_at is held to the time it was loaded
        *(event("page_view", f"{5000 + i // 12}-{i % 12 + 1:02d}-15T12:00:00Z", None) for i in range(240)),
    ]
    kept = [
        event(
            "purchase",
            f"{day}T11:{i // 60 % 60:02d}:{i % 60:02d}Z",
            f"{day}T12:00:00Z",
            order={
                "order_id": f"o-big-{i}",
                "revenue": BIG_REVENUE,
                "items": [{"product_id": "p-big", "price": BIG_REVENUE, "quantity": 1}],
            },
        )
        for i in range(BIG_ORDERS)
    ]
    return quarantined + kept, len(quarantined)


@pytest.fixture(scope="module")
def hostile_db(make_database, dbt):
    env = make_database()
    conn = pg_connect(env)
    from loader.schema import migrate

    migrate(conn)
    lines, _ = hostile_lines()
    loaded_at = datetime.now(UTC) - timedelta(minutes=20)
    with conn.cursor() as cur:
        load_id = str(uuid.uuid4())
        for i, line in enumerate(lines, start=1):
            cur.execute(
                "insert into raw.clickstream_events"
                " (payload, bucket, object_key, line_number, object_etag, load_id, loaded_at)"
                " values (%s, 'hostile', 'events/2026/03/hostile.json', %s, 'etag-h', %s, %s)",
                (json.dumps(line), i, load_id, loaded_at),
            )
    conn.commit()
    conn.close()
    return build_warehouse(env, dbt)


def test_the_warehouse_quarantines_them_and_makes_no_month_beyond_the_next(hostile_db):
    _, quarantined = hostile_lines()
    conn = pg_connect(hostile_db)
    try:
        with conn.cursor() as cur:
            cur.execute("select count(*) from analytics.rejected_events where object_key like '%hostile%'")
            assert cur.fetchone()[0] == quarantined
            cur.execute("select max(event_at) from analytics.fact_events")
            assert cur.fetchone()[0] <= datetime.now(UTC) + timedelta(days=1)
            cur.execute(
                "select count(*) from pg_inherits where inhparent = 'analytics.fact_events'::regclass"
            )
            # the known months (March 2026), this month and the next, and the default
            assert cur.fetchone()[0] <= 6
    finally:
        conn.close()


def test_totals_past_a_trillion_are_exact(hostile_db):
    """The KPI and the product table equal SQL on the detailed marts, past numeric(14, 2)."""
    reader = reader_connect(hostile_db)
    admin = pg_connect(hostile_db)
    try:
        with admin.cursor() as cur:
            cur.execute(
                "select sum(revenue) from analytics.fact_sessions where session_date = %s", (BIG_DAY,)
            )
            (expected,) = cur.fetchone()
        assert expected >= BIG_ORDERS * BIG_REVENUE > 10**12
        kpis = queries.overview_kpis(reader, BIG_DAY, BIG_DAY).df
        assert kpis.loc[kpis["period"] == "current", "revenue"].iloc[0] == float(round(expected, 2))
        products = queries.product_performance(reader, BIG_DAY, BIG_DAY, rank_by="revenue").df
        assert products.iloc[0]["product_id"] == "p-big"
        assert products.iloc[0]["revenue"] == pytest.approx(BIG_ORDERS * BIG_REVENUE, abs=0.005)
        bounds = queries.date_bounds(reader).df
        assert bounds["max_date"].iloc[0] <= datetime.now(UTC).date() + timedelta(days=1)
    finally:
        reader.close()
        admin.close()


def test_every_page_opens_without_a_widget_error(hostile_db, start_server, page):
    server = start_server(hostile_db)
    ui.open_app(page, server.url)
    ui.no_output_errors(page)
    expect(page.locator(".health-first-date")).to_have_text(k.FIRST_DATE.isoformat())
    nav = controller.NavsetBar(page, "page")
    for tab, widget in [
        ("funnel", "funnel-steps"),
        ("products", "products-performance"),
        ("activity", "activity-heatmap"),
    ]:
        nav.set(tab)
        ui.wait_sql(page, widget, "analytics.")
        ui.no_output_errors(page)
    assert page.locator(".widget-error").count() == 0
