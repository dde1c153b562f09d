"""The Overview's KPI row: events, sessions, purchasing sessions, revenue and conversion, each
against the previous period of equal length, checked against the plain-Python oracle and
against SQL on the detailed marts."""

from __future__ import annotations

from datetime import date

import formatting as fmt
import known_events as k
import oracle
import pytest
import queries
from pages.overview import KPIS
from shiny.playwright import controller
from test_app_browser import eventually, no_output_errors, open_app

CASES = [
    (k.FIRST_DATE, k.LAST_DATE, None, None),
    (date(2026, 3, 4), date(2026, 3, 4), None, None),
    (date(2026, 3, 3), date(2026, 3, 4), ["mobile", "desktop"], None),
    (date(2026, 3, 3), date(2026, 3, 3), None, ["newsletter", "facebook"]),
    (date(2026, 3, 4), date(2026, 3, 5), ["tablet"], ["google"]),
]


def _row(df, period: str) -> dict:
    return df.loc[df["period"] == period].iloc[0].to_dict()


@pytest.mark.parametrize("start, end, devices, sources", CASES)
def test_kpis_equal_the_oracle_for_the_period_and_the_one_before(reader, start, end, devices, sources):
    df = queries.overview_kpis(reader, start, end, devices, sources).df
    prev_start, prev_end = queries.previous_period(start, end)
    assert (prev_end - prev_start) == (end - start) and prev_end == date.fromordinal(start.toordinal() - 1)
    for period, (a, b) in {"current": (start, end), "previous": (prev_start, prev_end)}.items():
        got, want = _row(df, period), oracle.kpis(a, b, devices, sources)
        assert (got["first_date"], got["last_date"]) == (a, b)
        for key, value in want.items():
            if value is None:
                assert got[key] is None or got[key] != got[key], (period, key)
            else:
                assert got[key] == pytest.approx(value), (period, key)


def test_kpis_equal_sql_on_the_detailed_marts(reader, admin):
    start, end = date(2026, 3, 3), date(2026, 3, 4)
    df = queries.overview_kpis(reader, start, end, ["mobile", "desktop"]).df
    with admin.cursor() as cur:
        cur.execute(
            """
            select (select count(*) from analytics.fact_events
                    where (event_at at time zone 'UTC')::date between %(s)s and %(e)s and device_type = any(%(d)s)),
                   count(*), count(*) filter (where has_purchase), coalesce(sum(revenue), 0)
            from analytics.fact_sessions
            where session_date between %(s)s and %(e)s and device_type = any(%(d)s)
            """,
            {"s": start, "e": end, "d": ["mobile", "desktop"]},
        )
        events, sessions, buying, revenue = cur.fetchone()
    got = _row(df, "current")
    assert (got["events"], got["sessions"], got["purchasing_sessions"]) == (events, sessions, buying)
    assert got["revenue"] == pytest.approx(float(revenue))
    assert got["conversion_pct"] == pytest.approx(round(100 * buying / sessions, 2))


def test_change_texts():
    assert fmt.change(110, 100, 7) == "+10.0% vs previous 7 days"
    assert fmt.change(50, 200, 1) == "-75.0% vs previous 1 day"
    assert fmt.change(5, 0, 2) == "none in the previous 2 days"
    assert fmt.change(12.5, 10.25, 3, points=True) == "+2.25 pp vs previous 3 days"
    assert fmt.change(12.5, None, 3, points=True) == "no rate vs previous 3 days"


def expected_texts(start, end, devices=None, sources=None) -> dict[str, tuple[str, str]]:
    cur = oracle.kpis(start, end, devices, sources)
    prev = oracle.kpis(*queries.previous_period(start, end), devices, sources)
    n = (end - start).days + 1
    return {
        key: (show(cur[key]), fmt.change(cur[key], prev[key], n, points))
        for key, (_, show, points) in KPIS.items()
    }


def test_overview_shows_the_kpis(page, app_url):
    open_app(page, app_url)

    def shown_equal(want):
        for key, (value, change) in want.items():
            assert page.locator(f"#overview-kpis .kpi-{key}").inner_text() == value, key
            assert page.locator(f"#overview-kpis .kpi-{key}-change").inner_text() == change, key

    # the default range (90 days up to the last date) holds every session
    cur = page.evaluate("() => document.querySelector('#overview-filters-dates input').value")
    start = date.fromisoformat(cur)
    eventually(lambda: shown_equal(expected_texts(start, k.LAST_DATE)))
    assert page.locator("#overview-kpis .kpi-events").inner_text() == f"{len(k.all_events()):,}"

    controller.InputDateRange(page, "overview-filters-dates").set(("2026-03-04", "2026-03-04"))
    controller.InputSelectize(page, "overview-filters-devices").set(["mobile", "desktop"])
    page.wait_for_function(
        "() => document.getElementById('overview-kpis_sql').textContent.includes(\"ARRAY['mobile','desktop']\")"
    )
    want = expected_texts(date(2026, 3, 4), date(2026, 3, 4), ["mobile", "desktop"])
    eventually(lambda: shown_equal(want))
    assert want["sessions"][1].endswith("vs previous 1 day")
    no_output_errors(page)
