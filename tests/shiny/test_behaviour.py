"""The Behaviour page: every query against the plain-Python oracle (behaviour_oracle.py) under
several filter subsets (retention and attribution also over visitors who come back, in a
warehouse of their own: cohorts past week 0, orders of several touches), the shown SQL re-run
as-is, bound values and whitelists, an empty warehouse, and the page in a browser (no errors;
the tables, the Sankey and the retention curves equal the SQL)."""

from __future__ import annotations

from datetime import date

import behaviour_oracle as oracle
import known_events as k
import pytest
from queries import _plain
from queries import behaviour as q
from test_app_browser import (
    assert_table_equals,
    eventually,
    figure_data,
    no_output_errors,
    open_app,
    wait_sql,
)

START, END = k.FIRST_DATE, k.LAST_DATE
D3, D4 = date(2026, 3, 3), date(2026, 3, 4)
FEB23 = date(2026, 2, 23)  # the Monday of the week before the known one
SEGMENTS = [
    (START, END, None, None),
    (START, END, ["mobile"], None),
    (START, END, None, ["newsletter"]),
    (START, END, ["desktop", "tablet"], ["google", "facebook"]),
    (D3, D4, ["mobile", "desktop"], ["google"]),
    (D4, D4, None, ["facebook", "newsletter"]),
]


@pytest.mark.parametrize("start, end, devices, sources", SEGMENTS)
def test_top_paths(reader, start, end, devices, sources):
    expected = oracle.top_paths(start, end, devices, sources)
    df = q.top_paths(reader, start, end, devices, sources).df
    assert {r.path: (r.sessions, r.purchase_sessions) for r in df.itertuples()} == expected
    total = sum(n for n, _ in expected.values())
    for r in df.itertuples():
        assert r.share_pct == pytest.approx(round(100.0 * r.sessions / total, 1))
    assert list(df["sessions"]) == sorted(df["sessions"], reverse=True)


@pytest.mark.parametrize("start, end, devices, sources", SEGMENTS)
def test_top_purchase_paths(reader, start, end, devices, sources):
    expected = oracle.top_purchase_paths(start, end, devices, sources)
    df = q.top_purchase_paths(reader, start, end, devices, sources).df
    assert list(df.columns) == ["purchase_path", "purchase_sessions", "share_of_purchases_pct"]
    assert {r.purchase_path: r.purchase_sessions for r in df.itertuples()} == expected
    # the share is of all purchasing sessions of the filters: every one ends exactly one path
    purchases = sum(1 for s in oracle.kept(start, end, devices, sources) if s.purchase)
    assert sum(expected.values()) == purchases
    for r in df.itertuples():
        assert r.purchase_path.endswith(" > purchase")
        assert r.share_of_purchases_pct == pytest.approx(round(100.0 * r.purchase_sessions / purchases, 1))
    assert list(df["purchase_sessions"]) == sorted(df["purchase_sessions"], reverse=True)


def _buyer(session_id: str, **steps) -> k.Session:
    return k.Session(
        session_id, k._t("2026-03-02 09:00"), "desktop", "google", None, ["P1"], [("P1", 1)], **steps
    )


@pytest.mark.parametrize(
    "session, expected",
    [
        # the purchase within the depth: every step up to it
        (
            _buyer("x1", checkout=True, purchase=True),
            "home > product_view > add_to_cart > checkout_start > purchase",
        ),
        # six steps up to the purchase: the first is cut
        (
            _buyer("x2", checkout=True, purchase=True, search=True),
            "… > search > product_view > add_to_cart > checkout_start > purchase",
        ),
        (_buyer("x3", checkout=True), None),
    ],
)
def test_oracle_purchase_path(session, expected):
    assert oracle.purchase_path(session) == expected


@pytest.mark.parametrize("first_step", [None, "home", "search"])
@pytest.mark.parametrize("start, end, devices, sources", SEGMENTS[:5])
def test_path_flows(reader, first_step, start, end, devices, sources):
    df = q.path_flows(reader, start, end, first_step, devices, sources).df
    got = {(r.step_number, r.from_step, r.to_step): r.sessions for r in df.itertuples()}
    assert got == oracle.flows(start, end, first_step, devices, sources)


def test_paths_and_flows_are_what_the_sessions_did(reader):
    """Spot checks worked out by hand: s01 (views, cart, checkout, purchase) and s06 (a search);
    every known purchase ends the same five steps."""
    paths = dict(q.top_paths(reader, START, END).df[["path", "sessions"]].itertuples(index=False))
    assert (
        paths["home > product_view > add_to_cart > checkout_start > purchase"] == 6
    )  # s01 s04 s05 s09 s12 s15
    assert paths["home > search"] == 1  # s06
    purchase_paths = q.top_purchase_paths(reader, START, END).df
    assert dict(purchase_paths[["purchase_path", "purchase_sessions"]].itertuples(index=False)) == {
        "home > product_view > add_to_cart > checkout_start > purchase": 6  # s01 s04 s05 s09 s12 s15
    }
    flows = q.path_flows(reader, START, END, "home").df
    assert int(flows[(flows.step_number == 1) & (flows.to_step == "product_view")]["sessions"].iloc[0]) == 12


# the dates of the returning visitors' first week (23 February) too
RETURNING_SEGMENTS = [
    (FEB23, END, None, None),
    (date(2026, 2, 24), D3, ["desktop", "tablet"], None),
    (date(2026, 2, 26), END, None, ["newsletter", "google"]),
    (FEB23, date(2026, 2, 28), ["mobile", "tablet"], ["facebook", "google"]),
]
WAREHOUSES = {"known": k.SESSIONS, "returning": k.SESSIONS + k.RETURNING}


@pytest.fixture(params=sorted(WAREHOUSES))
def warehouse(request):
    """(the read-only role's connection, the sessions its warehouse holds): the known sessions
    (one per visitor), and those with the returning visitors (known_events.RETURNING)."""
    from shiny_testlib import reader_connect

    env = request.getfixturevalue(f"{request.param}_db")
    conn = reader_connect(env)
    yield conn, WAREHOUSES[request.param]
    conn.close()


@pytest.mark.parametrize("kind", sorted(q.RETENTION_KINDS))
@pytest.mark.parametrize("start, end, devices, sources", SEGMENTS + RETURNING_SEGMENTS)
def test_retention(warehouse, kind, start, end, devices, sources):
    conn, sessions = warehouse
    df = q.retention_weekly(conn, start, end, kind, devices, sources).df
    assert list(df.columns) == [
        "cohort_week",
        "weeks_since",
        "cohort_users",
        "retained_users",
        "retained_pct",
    ]
    got = {
        (r.cohort_week, r.weeks_since): (r.cohort_users, r.retained_users, r.retained_pct)
        for r in df.itertuples()
    }
    assert got == oracle.retention(kind, start, end, devices, sources, sessions)
    assert all(df["retained_users"] <= df["cohort_users"])


@pytest.mark.parametrize("start, end, devices, sources", SEGMENTS + RETURNING_SEGMENTS)
def test_attribution(warehouse, start, end, devices, sources):
    conn, sessions = warehouse
    df = q.attribution_by_channel(conn, start, end, devices, sources).df
    assert list(df.columns) == [
        "traffic_source",
        "model",
        "attributed_orders",
        "revenue",
        "revenue_share_pct",
    ]
    got = {
        (r.traffic_source, r.model): (r.attributed_orders, r.revenue, r.revenue_share_pct)
        for r in df.itertuples()
    }
    assert got == oracle.attribution(start, end, devices, sources, sessions)
    for model in q.ATTRIBUTION_MODELS:
        shares = df[df.model == model]["revenue_share_pct"]
        if len(shares):
            assert float(shares.sum()) == pytest.approx(100.0, abs=0.2)


def test_returning_visitors_worked_out_by_hand(returning_db):
    """The oracle's retention and attribution for the returning visitors, checked against
    numbers worked out by hand (see known_events.RETURNING), and the page's queries with them."""
    from shiny_testlib import reader_connect

    visitors = {
        # v-returning, v-loyal and v-once; the first two came back in the week of 2 March
        (FEB23, 0): (3, 3, 100.0),
        (FEB23, 1): (3, 2, 66.7),
        # the 15 known visitors; the two who came back are not in this cohort
        (START, 0): (15, 15, 100.0),
    }
    purchasers = {
        (FEB23, 0): (1, 1, 100.0),  # v-loyal, who bought again on 4 March
        (FEB23, 1): (1, 1, 100.0),
        (START, 0): (7, 7, 100.0),  # the 6 known buyers and v-returning
    }
    # (source, model) -> (orders, revenue, share %): the known orders (one touch each) and
    # v-returning's 120.00 (newsletter, then google), v-loyal's 15.00 (facebook) and 25.00
    # (facebook, then newsletter)
    attribution = {
        ("facebook", "first_touch"): (4.0, 122.0, 17.5),
        ("google", "first_touch"): (2.0, 95.0, 13.6),
        ("newsletter", "first_touch"): (3.0, 480.0, 68.9),
        ("facebook", "last_touch"): (3.0, 97.0, 13.9),
        ("google", "last_touch"): (3.0, 215.0, 30.8),
        ("newsletter", "last_touch"): (3.0, 385.0, 55.2),
        ("facebook", "linear"): (3.5, 109.5, 15.7),
        ("google", "linear"): (2.5, 155.0, 22.2),
        ("newsletter", "linear"): (3.0, 432.5, 62.1),
    }
    sessions = WAREHOUSES["returning"]
    assert oracle.retention("visitors", FEB23, END, sessions=sessions) == visitors
    assert oracle.retention("purchasers", FEB23, END, sessions=sessions) == purchasers
    assert oracle.attribution(FEB23, END, sessions=sessions) == attribution
    conn = reader_connect(returning_db)
    try:
        for kind, want in (("visitors", visitors), ("purchasers", purchasers)):
            df = q.retention_weekly(conn, FEB23, END, kind).df
            assert {(r.cohort_week, r.weeks_since): tuple(r[2:]) for r in df.itertuples(index=False)} == want
        df = q.attribution_by_channel(conn, FEB23, END).df
        assert {(r.traffic_source, r.model): tuple(r[2:]) for r in df.itertuples(index=False)} == attribution
    finally:
        conn.close()


@pytest.mark.parametrize(
    "call",
    [
        lambda c: q.top_paths(c, START, END, ["mobile"], ["google"]),
        lambda c: q.top_purchase_paths(c, START, END, None, ["newsletter"]),
        lambda c: q.path_flows(c, START, END, "home", ["desktop"], None),
        lambda c: q.retention_weekly(c, START, END, "purchasers", None, ["google"]),
        lambda c: q.attribution_by_channel(c, START, END, ["desktop"], None),
    ],
)
def test_shown_sql_gives_the_same_rows(reader, admin, call):
    result = call(reader)
    assert not result.empty
    with admin.cursor() as cur:
        cur.execute(result.sql)
        rows = cur.fetchall()
    assert [tuple(_plain(v) for v in r) for r in rows] == [
        tuple(r) for r in result.df.itertuples(index=False)
    ]


ATTACKS = ["x' or '1'='1", "home'; drop table analytics.agg_paths_daily; --", "home > product_view"]


@pytest.mark.parametrize("attack", ATTACKS)
def test_injection_through_first_step_and_sources_returns_nothing(reader, admin, attack):
    assert q.path_flows(reader, START, END, attack).empty
    assert q.top_paths(reader, START, END, None, [attack]).empty
    assert q.attribution_by_channel(reader, START, END, [attack]).empty
    with admin.cursor() as cur:
        cur.execute("select count(*) from analytics.agg_paths_daily")
        assert cur.fetchone()[0] > 0


def test_cohort_kind_comes_from_a_whitelist(reader):
    with pytest.raises(ValueError):
        q.retention_weekly(reader, START, END, "visitors' or 'x'='x")


def test_empty_warehouse_gives_empty_results(empty_db):
    from shiny_testlib import reader_connect

    conn = reader_connect(empty_db)
    try:
        for result in (
            q.top_paths(conn, START, END),
            q.top_purchase_paths(conn, START, END),
            q.path_flows(conn, START, END),
            q.retention_weekly(conn, START, END, "visitors"),
            q.attribution_by_channel(conn, START, END),
        ):
            assert result.empty, result.name
    finally:
        conn.close()


# --- in the browser ----------------------------------------------------------------------------


@pytest.mark.browser
def test_behaviour_page(page, app_url, reader):
    from playwright.sync_api import expect
    from shiny.playwright import controller

    open_app(page, app_url)
    controller.NavsetBar(page, "page").set("behaviour")
    wait_sql(page, "behaviour-paths", "agg_paths_daily")
    no_output_errors(page)
    assert_table_equals(page, "behaviour-paths", q.top_paths(reader, START, END).df)
    assert_table_equals(page, "behaviour-purchase_paths", q.top_purchase_paths(reader, START, END).df)
    wait_sql(page, "behaviour-attribution", "fact_attribution")
    assert_table_equals(page, "behaviour-attribution", q.attribution_by_channel(reader, START, END).df)

    eventually(lambda: _equal(sankey_links(page, "behaviour-flows"), oracle.flows()))

    # no known session starts with a search: the card says so
    controller.InputSelect(page, "behaviour-first_step").set("search")
    wait_sql(page, "behaviour-flows", "'search'::text")
    expect(page.locator("#behaviour-flows-message")).to_have_text("No data for these filters.")
    controller.InputSelect(page, "behaviour-first_step").set("home")
    wait_sql(page, "behaviour-flows", "'home'::text")
    eventually(lambda: _equal(sankey_links(page, "behaviour-flows"), oracle.flows(first_step="home")))

    controller.InputRadioButtons(page, "behaviour-cohorts").set("purchasers")
    wait_sql(page, "behaviour-retention", "'purchasers'")
    curves = figure_data(page, "behaviour-retention_curves")
    assert [t["name"] for t in curves] == ["2026-03-02"] and curves[0]["y"] == [100]

    controller.InputSelectize(page, "behaviour-filters-devices").set(["mobile"])
    controller.InputSelectize(page, "behaviour-filters-sources").set(["google"])
    wait_sql(page, "behaviour-paths", "ARRAY['mobile']", "ARRAY['google']")
    assert_table_equals(page, "behaviour-paths", q.top_paths(reader, START, END, ["mobile"], ["google"]).df)
    wait_sql(page, "behaviour-attribution", "ARRAY['mobile']")
    assert_table_equals(
        page, "behaviour-attribution", q.attribution_by_channel(reader, START, END, ["mobile"], ["google"]).df
    )
    no_output_errors(page)


@pytest.mark.browser
def test_behaviour_page_shows_the_returning_visitors(page, returning_db, start_server):
    """Over the warehouse with the returning visitors (its dates start on 24 February): each
    cohort's retention curve and the attribution table are the oracle's."""
    from shiny.playwright import controller
    from shiny_testlib import reader_connect

    first = min(s.start.date() for s in k.RETURNING)
    sessions = WAREHOUSES["returning"]
    server = start_server(returning_db)
    open_app(page, server.url)
    controller.NavsetBar(page, "page").set("behaviour")
    for kind in ("visitors", "purchasers"):
        controller.InputRadioButtons(page, "behaviour-cohorts").set(kind)
        wait_sql(page, "behaviour-retention", f"'{kind}'", f"'{first.isoformat()}'")
        want = oracle.retention(kind, first, END, sessions=sessions)
        weeks = sorted({week for week, _ in want})
        assert len(weeks) == 2 and max(since for _, since in want) == 1, want
        curves = [
            {
                "name": week.isoformat(),
                "x": sorted(since for w, since in want if w == week),
                "y": [want[(week, since)][2] for since in sorted(since for w, since in want if w == week)],
            }
            for week in weeks
        ]
        eventually(
            lambda want=curves: _equal(
                [
                    {key: t[key] for key in ("name", "x", "y")}
                    for t in figure_data(page, "behaviour-retention_curves")
                ],
                want,
            )
        )
    wait_sql(page, "behaviour-attribution", f"'{first.isoformat()}'")
    conn = reader_connect(returning_db)
    try:
        shown = q.attribution_by_channel(conn, first, END).df
    finally:
        conn.close()
    got = {(r.traffic_source, r.model): tuple(r[2:]) for r in shown.itertuples(index=False)}
    assert got == oracle.attribution(first, END, sessions=sessions)
    assert_table_equals(page, "behaviour-attribution", shown)
    no_output_errors(page)


def _equal(got, want) -> None:
    assert got == want


def sankey_links(page, widget: str) -> dict[tuple, int]:
    """The links a Sankey shows, as (step number, from step, to step) -> sessions (its nodes
    are labelled 'n. step')."""
    page.wait_for_function(
        "id => { const el = document.getElementById(id); return el && el._fullData; }", arg=f"{widget}-figure"
    )
    trace = page.evaluate(
        "id => { const t = document.getElementById(id)._fullData[0];"
        " return {labels: Array.from(t.node.label), source: Array.from(t.link.source),"
        " target: Array.from(t.link.target), value: Array.from(t.link.value)}; }",
        f"{widget}-figure",
    )
    links = {}
    for source, target, value in zip(trace["source"], trace["target"], trace["value"], strict=True):
        number, step = trace["labels"][source].split(". ", 1)
        links[(int(number), step, trace["labels"][target].split(". ", 1)[1])] = value
    return links


@pytest.mark.browser
def test_behaviour_page_on_an_empty_warehouse_shows_messages_not_errors(page, empty_db, start_server):
    from playwright.sync_api import expect
    from shiny.playwright import controller
    from test_app_browser import wait_idle

    server = start_server(empty_db)
    page.goto(server.url)
    wait_idle(page)
    controller.NavsetBar(page, "page").set("behaviour")
    wait_idle(page)
    for widget in ("paths", "purchase_paths", "flows", "retention", "retention_curves", "attribution"):
        expect(page.locator(f"#behaviour-{widget}-message .widget-empty")).to_have_text(
            "No data for these filters."
        )
    no_output_errors(page)
