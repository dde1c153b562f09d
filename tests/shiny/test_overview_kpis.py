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


# what the KPI row shows, written out (worked out by hand from known_events.py): the value, then
# the change against the previous period of equal length
ALL_DAYS_TEXTS = {
    # 2-4 March, every session; nothing in 27 February - 1 March
    "events": ("61", "none in the previous 3 days"),
    "sessions": ("15", "none in the previous 3 days"),
    "purchasing_sessions": ("6", "none in the previous 3 days"),
    "revenue": ("$537.00", "none in the previous 3 days"),  # 80 + 200 + 45 + 160 + 37 + 15
    "conversion_pct": ("40.00%", "no rate vs previous 3 days"),
}
MARCH_4_MOBILE_DESKTOP_TEXTS = {
    # s11-s15 against s06-s09 on 3 March
    "events": ("22", "+46.7% vs previous 1 day"),  # 22 against 15
    "sessions": ("5", "+25.0% vs previous 1 day"),  # 5 against 4
    "purchasing_sessions": ("2", "+100.0% vs previous 1 day"),  # s12, s15 against s09
    "revenue": ("$52.00", "-67.5% vs previous 1 day"),  # 37 + 15 against 160
    "conversion_pct": ("40.00%", "+15.00 pp vs previous 1 day"),  # 40 % against 25 %
}


def test_the_written_out_texts_are_the_oracle_s_numbers():
    """The texts above say the oracle's numbers (so the page is checked against both)."""
    for start, end, devices, texts in [
        (k.FIRST_DATE, k.LAST_DATE, None, ALL_DAYS_TEXTS),
        (date(2026, 3, 4), date(2026, 3, 4), ["mobile", "desktop"], MARCH_4_MOBILE_DESKTOP_TEXTS),
    ]:
        cur = oracle.kpis(start, end, devices)
        assert set(texts) == set(KPIS) == set(cur)
        for key, (value, _change) in texts.items():
            number = float(value.strip("$%").replace(",", ""))
            assert number == pytest.approx(cur[key]), key


def test_overview_shows_the_kpis(page, app_url):
    open_app(page, app_url)

    def shown_equal(want):
        for key, (value, change) in want.items():
            assert page.locator(f"#overview-kpis .kpi-{key}").inner_text() == value, key
            assert page.locator(f"#overview-kpis .kpi-{key}-change").inner_text() == change, key

    # the default range (90 days up to the last date) holds every session: 2-4 March
    cur = page.evaluate("() => document.querySelector('#overview-filters-dates input').value")
    assert date.fromisoformat(cur) == k.FIRST_DATE
    eventually(lambda: shown_equal(ALL_DAYS_TEXTS))

    controller.InputDateRange(page, "overview-filters-dates").set(("2026-03-04", "2026-03-04"))
    controller.InputSelectize(page, "overview-filters-devices").set(["mobile", "desktop"])
    page.wait_for_function(
        "() => document.getElementById('overview-kpis_sql').textContent.includes(\"ARRAY['mobile','desktop']\")"
    )
    eventually(lambda: shown_equal(MARCH_4_MOBILE_DESKTOP_TEXTS))
    no_output_errors(page)
