"""Time series pick their grain (a one- or two-day range shows hours) and offer a log or a
per-series normalised scale; numbers checked against the plain-Python oracle."""

from __future__ import annotations

from datetime import date

import known_events as k
import oracle
import pandas as pd
import plots
import pytest
import queries
from shiny.playwright import controller
from test_app_browser import eventually, figure_data, no_output_errors, open_app, wait_sql

DAY = date(2026, 3, 4)


@pytest.mark.parametrize(
    "grain, start, end, names, devices, sources",
    [
        ("hour", DAY, DAY, None, None, None),
        ("hour", date(2026, 3, 2), date(2026, 3, 3), ["page_view", "purchase"], ["desktop"], None),
        ("day", k.FIRST_DATE, k.LAST_DATE, None, None, ["google"]),
        ("week", k.FIRST_DATE, k.LAST_DATE, ["add_to_cart"], ["mobile", "tablet"], None),
    ],
)
def test_events_over_time_equal_the_oracle(reader, grain, start, end, names, devices, sources):
    df = queries.events_over_time(reader, start, end, grain, names, devices, sources).df
    got = {(pd.Timestamp(r.period_start).to_pydatetime(), r.event_name): r.events for r in df.itertuples()}
    assert got == oracle.events_over_time(grain, start, end, names, devices, sources)


def test_unknown_grain_is_refused(reader):
    with pytest.raises(ValueError):
        queries.events_over_time(reader, DAY, DAY, "minute; drop table analytics.fact_events")


def test_auto_grain():
    assert queries.auto_grain(DAY, DAY) == "hour"
    assert queries.auto_grain(date(2026, 3, 3), DAY) == "hour"
    assert queries.auto_grain(date(2026, 3, 2), DAY) == "day"
    assert queries.auto_grain(date(2025, 3, 4), DAY) == "week"


def _frame(grain="hour") -> pd.DataFrame:
    rows = oracle.events_over_time(grain, DAY, DAY)
    return pd.DataFrame(
        [{"period_start": at, "event_name": n, "events": v} for (at, n), v in sorted(rows.items())]
    )


def test_scales():
    df = _frame()
    linear = plots.time_series_figure(df, "period_start", "event_name", "events", "hour", "linear")
    log = plots.time_series_figure(df, "period_start", "event_name", "events", "hour", "log")
    norm = plots.time_series_figure(df, "period_start", "event_name", "events", "hour", "normalised")
    assert linear.layout.yaxis.type in (None, "linear") and log.layout.yaxis.type == "log"
    for lin, n in zip(linear.data, norm.data, strict=True):
        assert max(n.y) == 100.0
        assert list(n.y) == pytest.approx([100.0 * v / max(lin.y) for v in lin.y])
        assert [c[0] for c in n.customdata] == list(lin.y)  # hover keeps the counts


def test_one_day_at_day_grain_reads_as_a_date():
    df = _frame("day")
    fig = plots.time_series_figure(df, "period_start", "event_name", "events", "day")
    assert fig.layout.xaxis.tickformat == "%b %d, %Y"
    assert list(fig.layout.xaxis.tickvals) == [pd.Timestamp(DAY)]


def test_overview_shows_hours_for_one_day_and_a_log_scale(page, app_url):
    open_app(page, app_url)
    controller.InputDateRange(page, "overview-filters-dates").set(("2026-03-04", "2026-03-04"))
    wait_sql(page, "overview-daily", "h.event_hour at time zone 'UTC'", "'2026-03-04'::date")
    want = oracle.events_over_time("hour", DAY, DAY, queries.TIME_SERIES_EVENTS)

    def hours_shown():
        got = {}
        for trace in figure_data(page, "overview-daily"):
            for x, y in zip(trace["x"], trace["y"], strict=True):
                got[(pd.Timestamp(x).to_pydatetime(), trace["name"])] = y
        assert got == want
        assert len({at for at, _ in got}) > 1  # hours, not a single point

    eventually(hours_shown)
    tickformat = "() => document.getElementById('overview-daily-figure')._fullLayout.xaxis.tickformat"
    assert page.evaluate(tickformat) == "%b %d %H:%M"

    controller.InputRadioButtons(page, "overview-scale").set("log")
    page.wait_for_function(
        "() => { const el = document.getElementById('overview-daily-figure');"
        " return el && el._fullLayout && el._fullLayout.yaxis.type === 'log'; }"
    )
    controller.InputRadioButtons(page, "overview-grain").set("day")
    wait_sql(page, "overview-daily", "h.event_date::timestamp")

    def one_day_one_point():
        assert [len(t["x"]) for t in figure_data(page, "overview-daily")] == [1] * 4
        assert page.evaluate(tickformat) == "%b %d, %Y"

    eventually(one_day_one_point)

    page.evaluate("Shiny.setInputValue('overview-scale', 'sqrt')")
    expect_text = "#overview-daily-plot .widget-error"
    page.wait_for_selector(expect_text)
    assert page.locator(expect_text).inner_text() == "That choice is not valid."
    no_output_errors(page)
