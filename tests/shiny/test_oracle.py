"""Every widget's query under several filter subsets (devices, sources, product filters, a
non-UTC time zone, date ranges) against the plain-Python oracle (oracle.py) over the hand-made
events: a filter a query silently ignored would show here."""

from __future__ import annotations

from datetime import date

import known_events as k
import oracle
import pytest
import queries

START, END = k.FIRST_DATE, k.LAST_DATE
D3, D4 = date(2026, 3, 3), date(2026, 3, 4)
SEGMENTS = [
    (START, END, None, None),
    (START, END, ["mobile"], None),
    (START, END, None, ["newsletter"]),
    (START, END, ["desktop", "tablet"], ["google", "facebook"]),
    (D3, D4, ["mobile", "desktop"], ["google"]),
    (D4, D4, None, ["facebook", "newsletter"]),
]
PRODUCT_FILTERS = [
    {},
    {"devices": ["desktop"]},
    {"sources": ["newsletter", "facebook"]},
    {"categories": ["shoes"]},
    {"brands": ["acme", "initech"], "devices": ["mobile", "desktop"]},
    {"price_min": 20, "price_max": 100, "sources": ["google"]},
    {"start": D3, "end": D4, "categories": ["bags", "hats"]},
]
ZONES = ["UTC", "America/New_York", "Asia/Kolkata", "Australia/Sydney"]


def _dates(filters: dict) -> tuple[date, date, dict]:
    f = dict(filters)
    return f.pop("start", START), f.pop("end", END), f


@pytest.mark.parametrize("start, end, devices, sources", SEGMENTS)
def test_funnel(reader, start, end, devices, sources):
    df = queries.funnel_steps(reader, start, end, devices, sources).df
    assert list(df["step"]) == oracle.STEPS
    assert list(df["sessions"]) == oracle.funnel(start, end, devices, sources)


@pytest.mark.parametrize("dimension", ["device_type", "traffic_source", "week"])
@pytest.mark.parametrize("start, end, devices, sources", SEGMENTS[:5])
def test_funnel_breakdown(reader, dimension, start, end, devices, sources):
    df = queries.funnel_breakdown(reader, start, end, dimension, devices, sources).df
    got = {str(r["breakdown"]): [int(r[s]) for s in oracle.STEPS] for r in df.to_dict("records")}
    assert got == oracle.funnel_breakdown(dimension, start, end, devices, sources)


@pytest.mark.parametrize("start, end, devices, sources", SEGMENTS)
def test_time_to_convert(reader, start, end, devices, sources):
    row = queries.funnel_time_to_convert(reader, start, end, devices, sources).df.iloc[0].to_dict()
    for key, value in oracle.time_to_convert(start, end, devices, sources).items():
        if value is None:
            assert row[key] is None or row[key] != row[key], key
        else:
            assert row[key] == pytest.approx(value), key


@pytest.mark.parametrize("names", [None, ["page_view", "purchase"]])
@pytest.mark.parametrize("start, end, devices, sources", SEGMENTS)
def test_events_per_day(reader, names, start, end, devices, sources):
    df = queries.events_per_day(reader, start, end, names, devices, sources).df
    got = {(r.event_date, r.event_name): r.events for r in df.itertuples()}
    want = oracle.events_over_time("day", start, end, names, devices, sources)
    assert got == {(at.date(), name): n for (at, name), n in want.items()}


@pytest.mark.parametrize("filters", PRODUCT_FILTERS)
def test_product_performance(reader, filters):
    start, end, f = _dates(filters)
    df = queries.product_performance(reader, start, end, "views", **f).df
    want = oracle.products(start=start, end=end, **f)
    assert set(df["product_id"]) == set(want)
    for r in df.to_dict("records"):
        m = want[r["product_id"]]
        assert (r["views"], r["add_to_carts"], r["purchases"], r["orders"]) == (
            m["views"],
            m["add_to_carts"],
            m["purchases"],
            m["orders"],
        )
        assert r["revenue"] == pytest.approx(m["revenue"])
    flagged = {
        r["product_id"]
        for r in oracle.attention(start=start, end=end, **f)
        if r["is_high_attention_low_conversion"]
    }
    assert set(df.loc[df["is_high_attention_low_conversion"], "product_id"]) == flagged


@pytest.mark.parametrize("dimension", ["product_category", "product_brand"])
@pytest.mark.parametrize("filters", PRODUCT_FILTERS)
def test_product_rollup(reader, dimension, filters):
    start, end, f = _dates(filters)
    df = queries.product_rollup(reader, start, end, dimension, **f).df
    got = {
        r[dimension]: (r["products"], r["views"], r["add_to_carts"], r["purchases"], r["revenue"])
        for r in df.to_dict("records")
    }
    want = oracle.rollup(dimension, start=start, end=end, **f)
    assert set(got) == set(want)
    for key, values in want.items():
        assert got[key] == pytest.approx(values), key


@pytest.mark.parametrize("filters", PRODUCT_FILTERS)
def test_rarely_viewed(reader, filters):
    start, end, f = _dates(filters)
    df = queries.rarely_viewed_products(reader, start, end, **f).df
    assert list(zip(df["product_id"], df["views"], strict=True)) == oracle.rarely_viewed(
        start=start, end=end, **f
    )


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize(
    "start, end, names, devices, sources",
    [
        (START, END, None, None, None),
        (D3, D4, ["page_view", "add_to_cart"], ["mobile", "tablet"], None),
        (START, D3, None, None, ["newsletter", "facebook"]),
    ],
)
def test_activity_in_a_time_zone(reader, tz, start, end, names, devices, sources):
    hours, days, grid, by_device, by_source = oracle.local(tz, start, end, names, devices, sources)
    args = (reader, start, end, tz, names, devices, sources)
    df = queries.events_by_hour(*args).df
    assert {(r.local_hour.to_pydatetime(), r.event_name): r.events for r in df.itertuples()} == dict(hours)
    df = queries.events_by_local_day(*args).df
    assert {(r.local_date, r.event_name): r.events for r in df.itertuples()} == dict(days)
    df = queries.hour_weekday_heatmap(*args).df
    assert {(r.weekday, r.hour): r.events for r in df.itertuples()} == dict(grid)
    for dimension, want in (("device_type", by_device), ("traffic_source", by_source)):
        df = queries.activity_breakdown(reader, start, end, dimension, tz, names, devices, sources).df
        assert {(r.breakdown, r.event_name): r.events for r in df.itertuples()} == dict(want)


@pytest.mark.parametrize("start, end, devices, sources", SEGMENTS)
def test_weekday_conversion(reader, start, end, devices, sources):
    df = queries.conversion_by_weekday(reader, start, end, devices, sources).df
    want = oracle.weekday_conversion(start, end, devices, sources)
    assert {r.weekday: (r.sessions, r.purchase_sessions) for r in df.itertuples()} == want
    for r in df.itertuples():
        n, p = want[r.weekday]
        assert r.conversion_pct == pytest.approx(round(100 * p / n, 2))


@pytest.mark.parametrize("start, end, devices, sources", SEGMENTS)
def test_campaigns(reader, start, end, devices, sources):
    df = queries.campaign_sessions_per_day(reader, start, end, devices, sources).df
    got = {(r.session_date, r.campaign): r.sessions for r in df.itertuples()}
    assert got == oracle.campaigns(start, end, devices, sources)


# --- on screen ---------------------------------------------------------------------------------


def test_screen_equals_the_oracle_under_filters(page, app_url):
    from shiny.playwright import controller
    from test_app_browser import eventually, heatmap_cells, open_app, table_rows, wait_sql

    open_app(page, app_url)
    nav = controller.NavsetBar(page, "page")
    nav.set("funnel")
    controller.InputSelectize(page, "funnel-filters-devices").set(["mobile", "desktop"])
    controller.InputSelectize(page, "funnel-filters-sources").set(["google"])
    wait_sql(page, "funnel-steps", "ARRAY['mobile','desktop']", "ARRAY['google']")
    want = oracle.funnel(START, END, ["mobile", "desktop"], ["google"])
    t = oracle.time_to_convert(START, END, ["mobile", "desktop"], ["google"])

    def funnel_shown():
        assert [int(r[1].replace(",", "")) for r in table_rows(page, "funnel-steps")] == want
        assert page.locator("#funnel-kpis .kpi-overall").inner_text() == f"{100 * want[-1] / want[0]:.1f}%"
        assert page.locator("#funnel-kpis .kpi-pv-checkout").inner_text() == str(
            t["product_view_to_checkout_sessions"]
        )
        assert (
            page.locator("#funnel-kpis .kpi-median").inner_text()
            == f"{t['median_seconds_to_purchase'] / 60:.1f} min"
        )

    eventually(funnel_shown)

    nav.set("activity")  # the traffic source chosen on Funnel comes along (the devices are changed)
    controller.InputSelectize(page, "activity-filters-sources").expect_selected(["google"])
    controller.InputSelect(page, "activity-tz").set("Asia/Kolkata")
    controller.InputSelectize(page, "activity-filters-devices").set(["mobile", "tablet"])
    wait_sql(page, "activity-heatmap", "'Asia/Kolkata'", "ARRAY['mobile','tablet']", "ARRAY['google']")
    shown_start = date.fromisoformat(
        page.evaluate("() => document.querySelector('#activity-filters-dates input').value")
    )
    _, _, grid, _, _ = oracle.local(
        "Asia/Kolkata", shown_start, END, queries.TIME_SERIES_EVENTS, ["mobile", "tablet"], ["google"]
    )
    eventually(lambda: _equal(heatmap_cells(page), dict(grid)))


def _equal(got, want) -> None:
    assert got == want
