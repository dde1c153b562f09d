"""The dashboards' query functions against a real warehouse built by dbt from the known
events: every number is compared with one worked out independently (plain Python over the
events inserted, or direct SQL on the detailed marts)."""

from __future__ import annotations

import statistics
from datetime import date
from pathlib import Path

import known_events as k
import pandas as pd
import pytest
import queries
import yaml

START, END = k.FIRST_DATE, k.LAST_DATE
STEPS = ["page_view", "product_view", "add_to_cart", "checkout_start", "purchase"]


def _pct(a: float, b: float, digits: int = 1) -> float | None:
    return None if not b else round(100.0 * a / b, digits)


@pytest.mark.parametrize(
    "devices, sources",
    [
        (None, None),
        (["mobile"], None),
        (None, ["newsletter"]),
        (["desktop", "tablet"], ["google", "facebook"]),
    ],
)
def test_funnel_steps_counts_and_rates(reader, devices, sources):
    result = queries.funnel_steps(reader, START, END, devices, sources)
    expected = k.expected_funnel(devices, sources)
    assert list(result.df["step"]) == STEPS
    assert list(result.df["sessions"]) == expected
    for i in range(1, 5):
        row = result.df.iloc[i]
        assert row["step_conversion_pct"] == pytest.approx(_pct(expected[i], expected[i - 1]))
        assert row["drop_off_pct"] == pytest.approx(100.0 - 100.0 * expected[i] / expected[i - 1], abs=0.051)
        assert row["overall_conversion_pct"] == pytest.approx(_pct(expected[i], expected[0]))
    # the SQL shown to the user is the SQL that ran, with the chosen values bound
    for chosen in (devices, sources):
        shown = "ARRAY[" + ",".join(f"'{v}'" for v in chosen) + "]" if chosen else "NULL::text[] is null"
        assert shown in result.sql


def test_funnel_steps_date_filter(reader):
    day = date(2026, 3, 3)
    result = queries.funnel_steps(reader, day, day)
    assert list(result.df["sessions"]) == k.expected_funnel(start=day, end=day)


def test_funnel_answers_the_users_questions(reader, admin):
    """How many sessions with a product view reach checkout; median time to convert."""
    result = queries.funnel_time_to_convert(reader, START, END)
    row = result.df.iloc[0]
    assert row["product_view_sessions"] == sum(1 for s in k.SESSIONS if s.views)
    assert row["product_view_to_checkout_sessions"] == sum(1 for s in k.SESSIONS if s.views and s.checkout)
    seconds = k.expected_seconds_to_purchase()
    assert row["purchasing_sessions"] == len(seconds)
    assert row["median_seconds_to_purchase"] == pytest.approx(statistics.median(seconds))


@pytest.mark.parametrize("dimension", sorted(queries.FUNNEL_BREAKDOWNS))
def test_funnel_breakdown_side_by_side(reader, admin, dimension):
    result = queries.funnel_breakdown(reader, START, END, dimension)
    if dimension == "week":
        assert list(result.df["breakdown"]) == ["2026-03-02"]  # a Monday: all three days, one week
        assert result.df.iloc[0]["page_view"] == len(k.SESSIONS)
        return
    attr = {"device_type": "device", "traffic_source": "source"}[dimension]
    values = sorted({getattr(s, attr) for s in k.SESSIONS})
    assert list(result.df["breakdown"]) == values
    for _, row in result.df.iterrows():
        kw = {"devices": [row["breakdown"]]} if attr == "device" else {"sources": [row["breakdown"]]}
        expected = k.expected_funnel(**kw)
        assert [row[s] for s in STEPS] == expected
        assert row["overall_conversion_pct"] == pytest.approx(_pct(expected[4], expected[0]))


def test_events_per_day(reader):
    names = ["page_view", "product_view", "add_to_cart", "purchase"]
    result = queries.events_per_day(reader, START, END, names, ["mobile"], None)
    got = {(r.event_date, r.event_name): r.events for r in result.df.itertuples()}
    assert got == k.expected_events_per_day(names, ["mobile"])


def test_events_per_day_all_types(reader):
    result = queries.events_per_day(reader, START, END)
    got = {(r.event_date, r.event_name): r.events for r in result.df.itertuples()}
    assert got == k.expected_events_per_day()


def test_product_performance(reader):
    result = queries.product_performance(reader, START, END, "views", limit=50)
    expected = k.expected_products()
    viewed_or_carted = {pid for pid, e in expected.items() if e["views"] or e["add_to_carts"]}
    assert set(result.df["product_id"]) == viewed_or_carted
    for r in result.df.itertuples():
        e = expected[r.product_id]
        assert (r.views, r.add_to_carts, r.purchases, r.orders) == (
            e["views"],
            e["add_to_carts"],
            e["purchases"],
            e["orders"],
        )
        assert r.revenue == pytest.approx(e["revenue"])
        if e["views"]:
            assert r.cart_rate_pct == pytest.approx(_pct(e["add_to_carts"], e["views"]))
            assert r.purchase_rate_pct == pytest.approx(_pct(e["purchases"], e["views"]))
        else:
            assert r.cart_rate_pct != r.cart_rate_pct  # NULL: no views, no rate
    # ranked by views, ties by product_id
    ranked = sorted(viewed_or_carted, key=lambda pid: (-expected[pid]["views"], pid))
    assert list(result.df["product_id"]) == ranked


@pytest.mark.parametrize("rank_by", ["add_to_carts", "purchases", "revenue"])
def test_product_ranking(reader, rank_by):
    result = queries.product_performance(reader, START, END, rank_by, limit=3)
    expected = k.expected_products()
    ranked = sorted(expected, key=lambda pid: (-expected[pid][rank_by], pid))
    ranked = [pid for pid in ranked if expected[pid]["views"] or expected[pid]["add_to_carts"]]
    assert list(result.df["product_id"]) == ranked[:3]


def test_high_attention_low_conversion_flag(reader):
    result = queries.product_performance(reader, START, END, "views", limit=50)
    expected = k.expected_products()
    viewed = {pid: e for pid, e in expected.items() if e["views"]}
    views = sorted(e["views"] for e in viewed.values())
    rates = sorted(e["purchases"] / e["views"] for e in viewed.values())

    def quantile(values, q):  # percentile_cont
        pos = (len(values) - 1) * q
        lo = int(pos)
        hi = min(lo + 1, len(values) - 1)
        return values[lo] + (values[hi] - values[lo]) * (pos - lo)

    views_p75, rate_p25 = quantile(views, 0.75), quantile(rates, 0.25)
    flagged = {
        pid
        for pid, e in viewed.items()
        if e["views"] >= views_p75 and e["purchases"] / e["views"] <= rate_p25
    }
    got = set(result.df.loc[result.df["is_high_attention_low_conversion"], "product_id"])
    assert got == flagged
    assert flagged == {"P2"}  # 4 views, one add to cart, never bought


def test_product_filters(reader):
    result = queries.product_performance(
        reader, START, END, "views", categories=["shoes", "bags"], brands=["acme"], price_min=20, price_max=90
    )
    assert sorted(result.df["product_id"]) == ["P1", "P3"]
    result = queries.product_performance(reader, START, END, "views", price_min=100)
    assert sorted(result.df["product_id"]) == ["P2", "P4"]


@pytest.mark.parametrize(
    "fn, args",
    [
        (queries.product_performance, ("revenue",)),
        (queries.product_rollup, ("product_category",)),
        (queries.product_rollup, ("product_brand",)),
        (queries.rarely_viewed_products, ()),
    ],
)
def test_product_queries_read_the_totals_unless_split_by_device_or_source(reader, admin, fn, args):
    """Without a device or source filter the product queries read agg_product_daily_totals;
    with every device (or every source) selected they read agg_product_daily: same numbers."""
    with admin.cursor() as cur:
        cur.execute(
            "select array_agg(distinct device_type), array_agg(distinct traffic_source) from analytics.fact_events"
        )
        devices, sources = cur.fetchone()
    totals = fn(reader, START, END, *args)
    assert "analytics.agg_product_daily_totals" in totals.sql and not totals.empty
    for split in ({"devices": devices}, {"sources": sources}):
        detail = fn(reader, START, END, *args, **split)
        assert "analytics.agg_product_daily " in detail.sql
        pd.testing.assert_frame_equal(detail.df, totals.df)


@pytest.mark.parametrize("dimension, index", [("product_category", 1), ("product_brand", 2)])
def test_product_rollups(reader, dimension, index):
    result = queries.product_rollup(reader, START, END, dimension)
    expected = k.expected_products()
    groups: dict[str, dict] = {}
    for pid, e in expected.items():
        g = groups.setdefault(
            k.PRODUCTS[pid][index], {"views": 0, "add_to_carts": 0, "purchases": 0, "revenue": 0}
        )
        for m in g:
            g[m] += e[m]
    got = {r[dimension]: r for _, r in result.df.iterrows()}
    assert set(got) == set(groups)
    for name, g in groups.items():
        assert (got[name]["views"], got[name]["add_to_carts"], got[name]["purchases"]) == (
            g["views"],
            g["add_to_carts"],
            g["purchases"],
        )
        assert got[name]["revenue"] == pytest.approx(g["revenue"])
    # products: those of the group with any activity in the period
    active: dict[str, int] = {}
    for pid, e in expected.items():
        if e["views"] or e["add_to_carts"] or e["purchases"]:
            active[k.PRODUCTS[pid][index]] = active.get(k.PRODUCTS[pid][index], 0) + 1
    assert {name: int(r["products"]) for name, r in got.items()} == active
    assert list(result.df["revenue"]) == sorted(result.df["revenue"], reverse=True)


def test_rarely_viewed_products(reader):
    result = queries.rarely_viewed_products(reader, START, END, limit=3)
    expected = k.expected_products()
    # P6 was only ever added to the cart from a list: it was never viewed
    assert (
        list(result.df["product_id"]) == sorted(expected, key=lambda pid: (expected[pid]["views"], pid))[:3]
    )
    assert result.df.iloc[0]["product_id"] == "P6" and result.df.iloc[0]["views"] == 0


@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])
def test_activity_in_reporting_time_zone(reader, tz):
    names = ["page_view", "product_view", "add_to_cart", "purchase", "checkout_start", "search"]
    hours, days, grid = k.expected_local(tz)
    wide_start, wide_end = date(2026, 3, 1), date(2026, 3, 5)
    by_hour = queries.events_by_hour(reader, wide_start, wide_end, tz, names)
    assert {(r.local_hour.to_pydatetime(), r.event_name): r.events for r in by_hour.df.itertuples()} == dict(
        hours
    )
    by_day = queries.events_by_local_day(reader, wide_start, wide_end, tz, names)
    assert {(r.local_date, r.event_name): r.events for r in by_day.df.itertuples()} == dict(days)
    heat = queries.hour_weekday_heatmap(reader, wide_start, wide_end, tz, names)
    assert {(r.weekday, r.hour): r.events for r in heat.df.itertuples()} == dict(grid)


def test_local_date_range_cuts_at_local_midnight(reader):
    """In Berlin, s04's events at 23:30 UTC on 2 March fall on 3 March."""
    day = date(2026, 3, 3)
    _, days, _ = k.expected_local("Europe/Berlin", ["page_view"])
    result = queries.events_by_local_day(reader, day, day, "Europe/Berlin", ["page_view"])
    assert list(result.df["events"]) == [days[(day, "page_view")]]
    utc = queries.events_by_local_day(reader, day, day, "UTC", ["page_view"])
    assert list(utc.df["events"]) != list(result.df["events"])


@pytest.mark.parametrize("dimension", sorted(queries.ACTIVITY_BREAKDOWNS))
def test_activity_breakdown(reader, dimension):
    result = queries.activity_breakdown(reader, START, END, dimension, "UTC", ["page_view", "purchase"])
    attr = {"device_type": "device", "traffic_source": "source"}[dimension]
    expected: dict = {}
    for s in k.SESSIONS:
        for e in k.session_events(s):
            if e["event_name"] in ("page_view", "purchase"):
                key = (getattr(s, attr), e["event_name"])
                expected[key] = expected.get(key, 0) + 1
    assert {(r.breakdown, r.event_name): r.events for r in result.df.itertuples()} == expected


def test_conversion_by_weekday(reader):
    result = queries.conversion_by_weekday(reader, START, END)
    expected: dict = {}
    for s in k.SESSIONS:
        day = s.start.date().isoweekday()
        sessions, purchases = expected.get(day, (0, 0))
        expected[day] = (sessions + 1, purchases + int(s.purchase))
    got = {r.weekday: (r.sessions, r.purchase_sessions) for r in result.df.itertuples()}
    assert got == expected
    assert list(result.df["day"]) == ["Mon", "Tue", "Wed"]


def test_campaign_sessions_per_day(reader):
    result = queries.campaign_sessions_per_day(reader, START, END)
    expected: dict = {}
    for s in k.SESSIONS:
        key = (s.start.date(), s.campaign or "(none)")
        expected[key] = expected.get(key, 0) + 1
    assert {(r.session_date, r.campaign): r.sessions for r in result.df.itertuples()} == expected


def test_date_bounds_and_choices(reader):
    bounds = queries.date_bounds(reader).df.iloc[0]
    assert (bounds["min_date"], bounds["max_date"]) == (START, END)
    choices = queries.filter_choices(reader).df
    by_kind = choices.groupby("kind")["value"].apply(list).to_dict()
    assert by_kind["device_type"] == ["desktop", "mobile", "tablet"]
    assert by_kind["traffic_source"] == ["facebook", "google", "newsletter"]
    assert by_kind["product_category"] == ["bags", "hats", "shoes"]
    assert by_kind["product_brand"] == ["acme", "globex", "initech"]
    assert set(by_kind["event_name"]) == {
        "page_view",
        "product_view",
        "add_to_cart",
        "checkout_start",
        "purchase",
        "search",
    }
    prices = queries.price_bounds(reader).df.iloc[0]
    assert (prices["min_price"], prices["max_price"]) == (12, 200)


def test_dashboard_settings_come_from_the_dbt_project(reader):
    """Funnel steps, labels and freshness thresholds: one source, the dbt project's vars, read
    by the read-only role from analytics.dashboard_settings."""
    project = yaml.safe_load((Path(__file__).resolve().parents[2] / "dbt_project.yml").read_text())["vars"]
    df = queries.dashboard_settings(reader).df
    assert list(df["step_name"]) == project["funnel_steps"] == STEPS
    assert list(df["step_label"]) == [project["funnel_step_labels"][s] for s in STEPS]
    settings = queries.settings(reader)
    assert settings.steps == tuple(STEPS)
    assert settings.labels["checkout_start"] == "Checkout"
    assert settings.freshness_warn_minutes == 60 * project["freshness_warn_after_hours"]
    assert settings.freshness_error_minutes == 60 * project["freshness_error_after_hours"]


def test_data_health(reader, admin):
    result = queries.data_health(reader)
    row = result.df.iloc[0]
    assert row["freshness"] == "fresh"
    with admin.cursor() as cur:  # the known events were loaded 30 minutes before the suite began
        cur.execute("select round(extract(epoch from now() - max(finished_at)) / 60) from raw.load_runs")
        lag = cur.fetchone()[0]
    assert abs(row["lag_minutes"] - float(lag)) <= 1
    assert row["lag_minutes"] >= 30
    assert row["quarantined_events"] == k.INVALID_LINES
    assert row["first_date"] == k.FIRST_DATE
    # the loader's run (analytics.load_health) counts every line it loaded, the invalid ones too
    assert row["events_last_24h"] == len(k.all_events()) + k.INVALID_LINES


def test_shown_sql_gives_the_same_numbers_in_psql(reader, admin):
    """The SQL a widget shows, pasted as-is, returns exactly the rows the widget shows."""
    for result in [
        queries.funnel_steps(reader, START, END, ["mobile"], ["google"]),
        queries.product_performance(reader, START, END, "revenue", categories=["shoes"], price_min=50),
        queries.events_by_hour(reader, START, END, "Asia/Kolkata", ["page_view"]),
        queries.funnel_breakdown(reader, START, END, "week"),
    ]:
        with admin.cursor() as cur:
            cur.execute(result.sql)
            rows = cur.fetchall()
        assert len(rows) == len(result.df)
        assert [tuple(queries._plain(v) for v in row) for row in rows] == [
            tuple(None if v != v else v for v in r) for r in result.df.itertuples(index=False)
        ]


def test_empty_warehouse_gives_empty_results(empty_db):
    from shiny_testlib import reader_connect

    conn = reader_connect(empty_db)
    try:
        assert list(queries.funnel_steps(conn, START, END).df["sessions"]) == [0, 0, 0, 0, 0]
        assert queries.events_per_day(conn, START, END).empty
        assert queries.product_performance(conn, START, END).empty
        assert queries.hour_weekday_heatmap(conn, START, END).empty
        bounds = queries.date_bounds(conn).df.iloc[0]
        assert bounds["min_date"] is None and bounds["max_date"] is None
        empty = queries.data_health(conn).df.iloc[0]
        assert empty["freshness"] == "no data" and empty["first_date"] is None
    finally:
        conn.close()


def test_data_health_says_when_the_marts_are_behind_the_raw_data(reader, admin):
    """A load committed after the last successful build started is not in the marts: the bar
    says so with both times, until a build starts after it."""
    runs = [
        # loaded 3 days ago (older than anything else here), never built
        ("00000000-0000-0000-0000-00000000b001", "3 days", None, None),
        # a later successful build that started after that load
        ("00000000-0000-0000-0000-00000000b002", "2 days", "success", "47 hours"),
    ]
    try:
        with admin.cursor() as cur:
            load_id, ago, _, _ = runs[0]
            cur.execute(
                "insert into raw.load_runs (load_id, started_at, finished_at, objects, events, rejects, status,"
                " last_loaded_at) values (%s, now() - %s::interval, now() - %s::interval, 1, 5, 0, 'succeeded',"
                " now() - %s::interval)",
                (load_id, ago, ago, ago),
            )
        admin.commit()
        behind = queries.data_health(reader).df.iloc[0]
        assert bool(behind["marts_behind"]) is True
        assert behind["marts_built_at"] is None or behind["marts_built_at"] != behind["marts_built_at"]
        assert (
            abs(
                (pd.Timestamp.now(tz="UTC") - pd.Timestamp(behind["raw_loaded_at"])).total_seconds()
                - 3 * 86400
            )
            < 60
        )

        with admin.cursor() as cur:
            load_id, ago, status, built = runs[1]
            cur.execute(
                "insert into raw.load_runs (load_id, started_at, finished_at, objects, events, rejects, status,"
                " dbt_status, dbt_started_at, dbt_finished_at) values (%s, now() - %s::interval,"
                " now() - %s::interval, 0, 0, 0, 'succeeded', %s, now() - %s::interval, now() - %s::interval)",
                (load_id, ago, ago, status, built, built),
            )
        admin.commit()
        caught_up = queries.data_health(reader).df.iloc[0]
        assert bool(caught_up["marts_behind"]) is False
        assert caught_up["marts_built_at"] is not None
    finally:
        with admin.cursor() as cur:
            cur.execute("delete from raw.load_runs where load_id = any(%s::uuid[])", ([r[0] for r in runs],))
        admin.commit()


def test_data_health_says_when_the_newest_finished_build_failed(reader, admin):
    """A build that failed (here: the guard that new raw lines reached fact_events) shows on
    the bar with its error until a build passes; a build still running does not count."""
    runs = [
        (
            "00000000-0000-0000-0000-00000000d001",
            "failed",
            "0 seconds",
            "dbt build failed: assert_new_raw_lines_reach_fact_events",
        ),
        ("00000000-0000-0000-0000-00000000d002", "running", "-1 seconds", None),
        ("00000000-0000-0000-0000-00000000d003", "success", "-2 seconds", None),
    ]

    def insert(run) -> None:
        load_id, status, ago, error = run
        with admin.cursor() as cur:
            cur.execute(
                "insert into raw.load_runs (load_id, started_at, finished_at, objects, events, rejects, status,"
                " error, dbt_status, dbt_started_at) values (%s, now(), now(), 0, 0, 0, 'succeeded', %s, %s,"
                " now() - %s::interval)",
                (load_id, error, status, ago),
            )
        admin.commit()

    try:
        assert bool(queries.data_health(reader).df.iloc[0]["last_build_failed"]) is False
        insert(runs[0])
        insert(runs[1])
        failed = queries.data_health(reader).df.iloc[0]
        assert bool(failed["last_build_failed"]) is True
        assert failed["last_build_error"] == "dbt build failed: assert_new_raw_lines_reach_fact_events"
        insert(runs[2])
        assert bool(queries.data_health(reader).df.iloc[0]["last_build_failed"]) is False
    finally:
        with admin.cursor() as cur:
            cur.execute("delete from raw.load_runs where load_id = any(%s::uuid[])", ([r[0] for r in runs],))
        admin.commit()


def test_full_check_is_the_newest_finished_check(reader, admin):
    """The data-health bar's full check: the newest check that finished (a running one is not
    shown), its status, tests and failures, read by the read-only role."""
    checks = [
        ("00000000-0000-0000-0000-00000000c001", "2 days", "passed", 120, 0),
        ("00000000-0000-0000-0000-00000000c002", "1 hour", "failed", 121, 2),
        ("00000000-0000-0000-0000-00000000c003", "1 minute", "running", None, None),
    ]
    try:
        assert queries.full_check(reader).empty
        with admin.cursor() as cur:
            for check_id, ago, status, tests, failures in checks:
                cur.execute(
                    "insert into raw.full_checks (check_id, started_at, finished_at, status, tests, failures,"
                    " warnings) values (%s, now() - %s::interval,"
                    " case when %s <> 'running' then now() - %s::interval + interval '30 seconds' end,"
                    " %s, %s, %s, 0)",
                    (check_id, ago, status, ago, status, tests, failures),
                )
        admin.commit()
        row = queries.full_check(reader).df.iloc[0]
        assert (row["status"], int(row["tests"]), int(row["failures"])) == ("failed", 121, 2)
        assert abs((pd.Timestamp.now(tz="UTC") - pd.Timestamp(row["started_at"])).total_seconds() - 3600) < 60
    finally:
        with admin.cursor() as cur:
            cur.execute(
                "delete from raw.full_checks where check_id = any(%s::uuid[])", ([c[0] for c in checks],)
            )
        admin.commit()
