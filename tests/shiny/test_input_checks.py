"""Inputs are checked before any query runs: a crafted value sent over the websocket (a date
that is not a date, a range ending before it starts, a value outside an input's fixed choices)
gives one plain message in the cards, runs no query, and no PostgreSQL error text reaches the
browser (it goes to the log)."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date

import pytest
import querying
from inputs import (
    BAD_CHOICE,
    BAD_DATES,
    InvalidInput,
    checked_choice,
    checked_choices,
    checked_dates,
    text_values,
)
from playwright.sync_api import Page, expect
from shiny.playwright import controller
from test_app_browser import no_output_errors, open_app, wait_idle

CRAFTED_DATE = "2019-10-01'; drop table analytics.fact_events; --"
PG_ERROR_WORDS = ["invalid input syntax", "syntax error", "ERROR:", "LINE 1", "psycopg2", "Traceback"]


# --- the checks themselves ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        (CRAFTED_DATE, "2026-03-04"),
        ("2026-03-01", CRAFTED_DATE),
        ("2026-02-30", "2026-03-04"),
        ("2026-03-04", "2026-03-01"),  # start after end
        ("2026-3-1", "2026-03-04"),
        (None, "2026-03-04"),
        ("2026-03-01",),
        "2026-03-01",
        None,
        (20260301, 20260304),
    ],
)
def test_bad_date_ranges_are_refused(value):
    with pytest.raises(InvalidInput, match=BAD_DATES):
        checked_dates(value)


def test_good_date_ranges_pass_as_dates():
    assert checked_dates(("2026-03-01", "2026-03-04")) == (date(2026, 3, 1), date(2026, 3, 4))
    assert checked_dates((date(2026, 3, 2), date(2026, 3, 2))) == (date(2026, 3, 2), date(2026, 3, 2))


@pytest.mark.parametrize("value", ["views; drop table x", "", None, ["views"], 1])
def test_values_outside_the_fixed_choices_are_refused(value):
    with pytest.raises(InvalidInput, match=BAD_CHOICE):
        checked_choice(value, {"views": "Views", "revenue": "Revenue"})


def test_multi_selects():
    assert checked_choices(("page_view",), {"page_view", "purchase"}) == ("page_view",)
    assert checked_choices(None, {"page_view"}) == ()
    for bad in [("page_view", "x' or 1=1"), "page_view", [1]]:
        with pytest.raises(InvalidInput):
            checked_choices(bad, {"page_view"})
    assert text_values(["mobile' or 1=1"]) == ("mobile' or 1=1",)  # bound as a parameter
    for bad in ["mobile", [{"a": 1}], 5]:
        with pytest.raises(InvalidInput):
            text_values(bad)


class OneConnection:
    """A stand-in for the pool: hands out the one connection it holds."""

    def __init__(self, conn) -> None:
        self.conn = conn

    @contextmanager
    def connection(self):
        yield self.conn


def test_database_error_text_goes_to_the_log_not_to_the_widget(reader, caplog, monkeypatch):
    monkeypatch.setattr(querying, "POOL", OneConnection(reader))

    def broken(conn):
        with conn.cursor() as cur:
            cur.execute("select 'not a date'::date")
        raise AssertionError("unreachable")

    with caplog.at_level("ERROR", logger="dashboards.app"):
        result = querying.fetch(None, broken)
    assert result.error == querying.QUERY_FAILED
    assert not any(word in result.error for word in PG_ERROR_WORDS)
    assert "invalid input syntax for type date" in caplog.text


# --- in the browser ----------------------------------------------------------------------------


def run_count(server) -> int:
    """Page queries the server has run so far (`queries.base.run` logs one line each at
    debug; the data-health bar's minutely query does not count)."""
    server.log.flush()
    lines = open(server.log.name).read().splitlines()
    return sum("dashboards.queries query ran:" in line and "data_health" not in line for line in lines)


def cards_say(page: Page, widgets: list[str], message: str) -> None:
    for widget in widgets:
        expect(page.locator(f"#{widget}-message .widget-error")).to_have_text(message)
        expect(page.locator(f"#{widget}-sql")).to_have_text("-- no query ran")


def nothing_from_postgres_on_screen(page: Page) -> None:
    text = page.locator("body").inner_text()
    for word in PG_ERROR_WORDS + ["drop table"]:
        assert word not in text, word
    no_output_errors(page)


@pytest.fixture(scope="module")
def debug_server(known_db, start_server):
    return start_server({**known_db, "LOG_LEVEL": "debug"})


def test_crafted_inputs_give_a_plain_message_and_run_no_query(page, debug_server, admin):
    open_app(page, debug_server.url)
    before = run_count(debug_server)
    assert before >= 3  # the hook counts: the Overview's three queries ran

    page.evaluate("d => Shiny.setInputValue('overview-filters-dates', [d, '2026-03-04'])", CRAFTED_DATE)
    cards_say(page, ["overview-funnel", "overview-daily", "overview-products"], BAD_DATES)
    nothing_from_postgres_on_screen(page)
    assert run_count(debug_server) == before  # not one query ran

    page.evaluate("Shiny.setInputValue('overview-filters-dates', ['2026-03-04', '2026-03-01'])")
    wait_idle(page)
    cards_say(page, ["overview-funnel", "overview-daily", "overview-products"], BAD_DATES)

    page.evaluate("Shiny.setInputValue('overview-filters-dates', ['2026-03-01', '2026-03-04'])")
    expect(page.locator("#overview-funnel-sql")).to_contain_text("'2026-03-01'::date")
    page.evaluate("Shiny.setInputValue('overview-filters-events', [\"page_view' or 1=1\"])")
    cards_say(page, ["overview-daily"], BAD_CHOICE)
    expect(page.locator("#overview-funnel-message .widget-error")).to_have_count(0)

    nav = controller.NavsetBar(page, "page")
    nav.set("funnel")
    wait_idle(page)
    expect(page.locator("#funnel-breakdown_card-sql")).to_contain_text("agg_funnel_daily")
    before = run_count(debug_server)
    page.evaluate("Shiny.setInputValue('funnel-breakdown', 'device_type; drop table analytics.fact_events')")
    cards_say(page, ["funnel-breakdown_card"], BAD_CHOICE)
    assert run_count(debug_server) == before
    page.evaluate("Shiny.setInputValue('funnel-filters-dates', ['2026-02-31', '2026-03-04'])")
    cards_say(page, ["funnel-steps", "funnel-breakdown_card"], BAD_DATES)
    expect(page.locator("#funnel-kpis")).to_contain_text(BAD_DATES)

    nav.set("products")
    wait_idle(page)
    expect(page.locator("#products-performance-sql")).to_contain_text("dim_products")
    before = run_count(debug_server)
    page.evaluate("Shiny.setInputValue('products-rank', 'views; drop table analytics.dim_products')")
    cards_say(page, ["products-performance"], BAD_CHOICE)
    assert run_count(debug_server) == before

    nav.set("activity")
    wait_idle(page)
    page.evaluate("Shiny.setInputValue('activity-tz', \"UTC'; drop table analytics.fact_events; --\")")
    cards_say(
        page, ["activity-hourly", "activity-daily", "activity-heatmap", "activity-breakdown_card"], BAD_CHOICE
    )
    wait_idle(page)
    nothing_from_postgres_on_screen(page)

    log = open(debug_server.log.name).read()
    assert "rejected input" in log
    assert "query failed" not in log
    assert "invalid input syntax" not in log
