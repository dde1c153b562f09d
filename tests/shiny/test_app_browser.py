"""The dashboards in a real browser: serve.py on a free port against the known warehouse,
headless Chromium through playwright. Every page loads, every filter changes the numbers,
and the numbers shown equal the SQL's."""

from __future__ import annotations

import math
import socket
import statistics
import threading
import time
from datetime import date

import known_events as k
import pytest
import queries
from playwright.sync_api import Page, expect
from shiny.playwright import controller

pytestmark = pytest.mark.browser
START, END = k.FIRST_DATE, k.LAST_DATE
STEPS = ["page_view", "product_view", "add_to_cart", "checkout_start", "purchase"]


# --- helpers -----------------------------------------------------------------------------------


def open_app(page: Page, url: str) -> None:
    page.goto(url)
    wait_idle(page)
    wait_sql(page, "overview-funnel", "agg_funnel_daily")


def wait_idle(page: Page) -> None:
    page.wait_for_function(
        "() => window.Shiny && Shiny.shinyapp && Shiny.shinyapp.isConnected()"
        " && !document.documentElement.classList.contains('shiny-busy')"
    )
    page.wait_for_timeout(150)
    page.wait_for_function("() => !document.documentElement.classList.contains('shiny-busy')")


def sql_of(page: Page, widget: str) -> str:
    return page.evaluate("id => document.getElementById(id).textContent", f"{widget}-sql")


def wait_sql(page: Page, widget: str, *fragments: str) -> str:
    """Wait until the widget's shown SQL carries these parameter values (the query re-ran)."""
    page.wait_for_function(
        "([id, parts]) => { const el = document.getElementById(id);"
        " return el && parts.every(p => el.textContent.includes(p)); }",
        arg=[f"{widget}-sql", list(fragments)],
    )
    wait_idle(page)
    return sql_of(page, widget)


def table_rows(page: Page, widget: str) -> list[list[str]]:
    page.wait_for_selector(f"#{widget}-table table tbody tr")
    return page.evaluate(
        "id => Array.from(document.querySelectorAll('#' + id + ' table tbody tr'))"
        ".map(tr => Array.from(tr.querySelectorAll('td')).map(td => td.textContent.trim()))",
        f"{widget}-table",
    )


def table_header(page: Page, widget: str) -> list[str]:
    return page.evaluate(
        "id => Array.from(document.querySelectorAll('#' + id + ' table thead tr:first-child th'))"
        ".map(th => th.textContent.trim())",
        f"{widget}-table",
    )


def figure_data(page: Page, widget: str) -> list[dict]:
    page.wait_for_function(
        "id => { const el = document.getElementById(id); return el && el._fullData; }", arg=f"{widget}-figure"
    )
    return page.evaluate(
        "id => { const arr = v => (v === undefined || v === null) ? null : Array.from(v);"
        " return document.getElementById(id)._fullData.map(t => ({name: t.name, x: arr(t.x), y: arr(t.y),"
        " z: t.z ? Array.from(t.z, arr) : null})); }",
        f"{widget}-figure",
    )


def same(text: str, value) -> bool:
    """A DataGrid cell's text shows this SQL value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return text == ""
    if isinstance(value, bool):
        return text.lower() == str(value).lower()
    if isinstance(value, int | float):
        try:  # shown with thousands separators, money with its currency, rates with %
            number = float(text.replace(",", "").replace("$", "").removesuffix("%"))
            return math.isclose(number, float(value), rel_tol=1e-9, abs_tol=0.0051)
        except ValueError:
            return False
    return text == str(value)


def eventually(check, timeout: float = 20.0):
    """Retry an assertion until it holds: a DataGrid re-renders a moment after its new value
    arrives, and longer on a loaded machine."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, ValueError, IndexError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)


def _assert_equal(got, want) -> None:
    assert got == want


def heatmap_cells(page: Page) -> dict:
    z = figure_data(page, "activity-heatmap")[0]["z"]
    return {(d + 1, h): v for d, row in enumerate(z) for h, v in enumerate(row) if v}


def counts_equal(page: Page, widget: str, expected: list[int]) -> None:
    def check():
        assert [int(r[1].replace(",", "")) for r in table_rows(page, widget)] == expected

    eventually(check)


def first_column_equal(page: Page, widget: str, expected: list[str]) -> None:
    def check():
        assert [r[0] for r in table_rows(page, widget)] == expected

    eventually(check)


def assert_table_equals(page: Page, widget: str, df, columns: list[str] | None = None) -> None:
    eventually(lambda: _table_equals(page, widget, df, columns))


def _table_equals(page: Page, widget: str, df, columns: list[str] | None = None) -> None:
    header = table_header(page, widget)
    rows = table_rows(page, widget)
    columns = columns or list(df.columns)
    assert len(rows) == len(df), (widget, rows)
    for shown, (_, row) in zip(rows, df.iterrows(), strict=True):
        for col in columns:
            cell = shown[header.index(col)]
            assert same(cell, row[col]), (widget, col, cell, row[col])


def no_output_errors(page: Page) -> None:
    assert page.locator(".shiny-output-error").count() == 0, page.locator(
        ".shiny-output-error"
    ).all_inner_texts()


def run_shown_sql(admin, page: Page, widget: str) -> list[tuple]:
    with admin.cursor() as cur:
        cur.execute(sql_of(page, widget))
        return cur.fetchall()


# --- pages -----------------------------------------------------------------------------------


def test_every_page_loads_with_health_bar_and_no_errors(page, app_url):
    open_app(page, app_url)
    nav = controller.NavsetBar(page, "page")
    for tab, widget in [
        ("funnel", "funnel-steps"),
        ("products", "products-performance"),
        ("activity", "activity-heatmap"),
    ]:
        nav.set(tab)
        wait_sql(page, widget, "analytics.")
        no_output_errors(page)
        expect(page.locator(".health-status")).to_have_text("Data fresh")
    expect(page.locator(".health-quarantined")).to_have_text(str(k.INVALID_LINES))
    expect(page.locator(".health-first-date")).to_have_text("2026-03-02")  # k.FIRST_DATE, written out
    expect(page.locator(".health-events-24h")).not_to_have_text("n/a")
    expect(page.locator(".health-full-check")).to_have_text("Full check: not run yet")
    assert page.locator(".health-build-failed").count() == 0
    assert page.locator(".widget-error").count() == 0


def test_health_bar_shows_the_newest_full_check(page, app_url, admin):
    """A failed daily full check shows as "Full check failed <when>: 2 tests", as raw.full_checks says."""
    check_id = "00000000-0000-0000-0000-00000000c101"
    with admin.cursor() as cur:
        cur.execute(
            "insert into raw.full_checks (check_id, started_at, finished_at, status, tests, failures, warnings)"
            " values (%s, '2026-03-01 03:00:00+00', '2026-03-01 03:04:00+00', 'failed', 121, 2, 0)",
            (check_id,),
        )
    admin.commit()
    try:
        open_app(page, app_url)
        expect(page.locator(".health-full-check")).to_have_text(
            "Full check failed 2026-03-01 03:00 UTC: 2 tests"
        )
    finally:
        with admin.cursor() as cur:
            cur.execute("delete from raw.full_checks where check_id = %s", (check_id,))
        admin.commit()


def test_health_bar_says_the_last_build_failed(page, app_url, admin):
    """The newest finished build failed: a red badge with its time, the error as its title; the
    healthy bar above has none."""
    load_id = "00000000-0000-0000-0000-00000000d101"
    error = "dbt build failed: assert_new_raw_lines_reach_fact_events"
    with admin.cursor() as cur:
        cur.execute(
            "insert into raw.load_runs (load_id, started_at, finished_at, objects, events, rejects, status,"
            " error, dbt_status, dbt_started_at) values (%s, now(), now(), 0, 0, 0, 'succeeded', %s,"
            " 'failed', date_trunc('minute', now()) + interval '1 hour')",
            (load_id, error),
        )
        cur.execute(
            "select to_char((date_trunc('minute', now()) + interval '1 hour') at time zone 'UTC', 'YYYY-MM-DD HH24:MI')"
        )
        at = cur.fetchone()[0]
    admin.commit()
    try:
        open_app(page, app_url)
        badge = page.locator(".health-build-failed")
        expect(badge).to_have_text(f"Last build failed {at} UTC")
        expect(badge).to_have_attribute("title", f"{error} (the next ETL run builds again)")
    finally:
        with admin.cursor() as cur:
            cur.execute("delete from raw.load_runs where load_id = %s", (load_id,))
        admin.commit()


def test_overview_numbers_follow_every_filter(page, app_url, reader, admin):
    open_app(page, app_url)
    # the default range ends at the newest data in the warehouse (not today)
    controller.InputDateRange(page, "overview-filters-dates").expect_value(
        (START.isoformat(), END.isoformat())
    )
    rows = table_rows(page, "overview-funnel")
    assert [int(r[1].replace(",", "")) for r in rows] == k.expected_funnel()
    assert [r[0] for r in rows] == ["Page view", "Product view", "Add to cart", "Checkout", "Purchase"]
    funnel_fig = figure_data(page, "overview-funnel")
    assert funnel_fig[0]["x"] == k.expected_funnel()

    controller.InputSelectize(page, "overview-filters-devices").set(["mobile"])
    wait_sql(page, "overview-funnel", "ARRAY['mobile']")
    counts_equal(page, "overview-funnel", k.expected_funnel(["mobile"]))

    controller.InputSelectize(page, "overview-filters-sources").set(["google"])
    wait_sql(page, "overview-funnel", "ARRAY['mobile']", "ARRAY['google']")
    expected = k.expected_funnel(["mobile"], ["google"])
    counts_equal(page, "overview-funnel", expected)
    drop = table_rows(page, "overview-funnel")[1][3]
    assert drop == f"{round(100 - 100 * expected[1] / expected[0], 1):.1f}%"  # a rate, shown with %

    # events per day: one trace per selected event type, values as in the SQL
    wait_sql(page, "overview-daily", "ARRAY['mobile']", "ARRAY['google']")
    names = ["add_to_cart", "page_view", "product_view", "purchase"]
    want = k.expected_events_per_day(names, ["mobile"], ["google"])

    def daily_matches():
        traces = {
            t["name"]: dict(zip(t["x"], t["y"], strict=True)) for t in figure_data(page, "overview-daily")
        }
        assert {(date.fromisoformat(x[:10]), n): y for n, t in traces.items() for x, y in t.items()} == want

    eventually(daily_matches)

    controller.InputSelectize(page, "overview-filters-events").set(["page_view"])
    wait_sql(page, "overview-daily", "ARRAY['page_view']::text[]")
    eventually(lambda: _assert_equal([t["name"] for t in figure_data(page, "overview-daily")], ["page_view"]))

    controller.InputDateRange(page, "overview-filters-dates").set(("2026-03-03", "2026-03-03"))
    wait_sql(page, "overview-funnel", "'2026-03-03'::date and '2026-03-03'::date")
    day = date(2026, 3, 3)
    counts_equal(page, "overview-funnel", k.expected_funnel(["mobile"], ["google"], day, day))

    # top products equal the query function's rows and the shown SQL's rows in psql
    wait_sql(page, "overview-products", "'2026-03-03'::date")
    df = queries.product_performance(reader, day, day, "purchases", ["mobile"], ["google"], limit=20).df
    assert_table_equals(
        page,
        "overview-products",
        df,
        ["product_id", "views", "add_to_carts", "purchases", "purchase_rate_pct"],
    )
    assert len(run_shown_sql(admin, page, "overview-products")) == len(df)
    no_output_errors(page)


def test_csv_download_matches_table(page, app_url, reader):
    open_app(page, app_url)
    wait_sql(page, "overview-products", "analytics.agg_product_daily_totals")
    with page.expect_download() as info:
        page.locator("#overview-products-csv").click()
    text = open(info.value.path()).read()
    df = queries.product_performance(reader, START, END, "purchases", limit=20).df
    assert text == df.to_csv(index=False)


def test_funnel_page(page, app_url, reader):
    open_app(page, app_url)
    controller.NavsetBar(page, "page").set("funnel")
    wait_sql(page, "funnel-steps", "agg_funnel_daily")
    expected = k.expected_funnel()
    expect(page.locator(".kpi-overall")).to_have_text(f"{100 * expected[4] / expected[0]:.1f}%")
    checkout = sum(1 for s in k.SESSIONS if s.views and s.checkout)
    expect(page.locator(".kpi-pv-checkout")).to_have_text(str(checkout))
    median_minutes = statistics.median(k.expected_seconds_to_purchase()) / 60
    expect(page.locator(".kpi-median")).to_have_text(f"{median_minutes:.1f} min")
    counts_equal(page, "funnel-steps", expected)
    kpi_sql = page.evaluate("document.getElementById('funnel-kpis_sql').textContent")
    assert "analytics.agg_time_to_purchase_daily" in kpi_sql and "analytics.agg_funnel_daily" in kpi_sql

    controller.InputRadioButtons(page, "funnel-breakdown").set("traffic_source")
    wait_sql(page, "funnel-breakdown_card", "traffic_source as breakdown")
    df = queries.funnel_breakdown(reader, START, END, "traffic_source").df
    assert_table_equals(page, "funnel-breakdown_card", df)
    fig = figure_data(page, "funnel-breakdown_card")
    assert [t["name"] for t in fig] == list(df["breakdown"])

    controller.InputRadioButtons(page, "funnel-breakdown").set("week")
    wait_sql(page, "funnel-breakdown_card", "date_trunc('week'")
    first_column_equal(page, "funnel-breakdown_card", ["2026-03-02"])

    controller.InputSelectize(page, "funnel-filters-devices").set(["desktop"])
    controller.InputSelectize(page, "funnel-filters-sources").set(["google", "newsletter"])
    wait_sql(page, "funnel-steps", "ARRAY['desktop']", "ARRAY['google','newsletter']")
    counts_equal(page, "funnel-steps", k.expected_funnel(["desktop"], ["google", "newsletter"]))
    controller.InputDateRange(page, "funnel-filters-dates").set(("2026-03-04", "2026-03-04"))
    wait_sql(page, "funnel-steps", "'2026-03-04'::date and '2026-03-04'::date")
    day = date(2026, 3, 4)
    counts_equal(page, "funnel-steps", k.expected_funnel(["desktop"], ["google", "newsletter"], day, day))
    no_output_errors(page)


def test_products_page(page, app_url, reader):
    open_app(page, app_url)
    controller.NavsetBar(page, "page").set("products")
    wait_sql(page, "products-performance", "measured.views desc")
    df = queries.product_performance(reader, START, END, "views", price_min=12, price_max=200).df
    assert_table_equals(
        page,
        "products-performance",
        df,
        ["product_id", "views", "add_to_carts", "purchases", "cart_rate_pct"],
    )
    # the high-attention, low-conversion product is highlighted
    flagged = page.locator(
        "#products-performance-table tbody tr.flagged-row, #products-performance-table tbody td.flagged-row"
    )
    expect(flagged.first).to_be_visible()
    assert "P2" in flagged.first.locator("xpath=ancestor-or-self::tr").inner_text()
    rare = table_rows(page, "products-rare")
    assert rare[0][0] == "P6" and rare[0][5] == "0"

    controller.InputSelect(page, "products-rank").set("revenue")
    wait_sql(page, "products-performance", "measured.revenue desc")
    df = queries.product_performance(reader, START, END, "revenue", price_min=12, price_max=200).df
    first_column_equal(page, "products-performance", list(df["product_id"]))

    controller.InputSelectize(page, "products-filters-categories").set(["shoes", "bags"])
    controller.InputSelectize(page, "products-filters-brands").set(["acme"])
    wait_sql(page, "products-performance", "ARRAY['shoes','bags']", "ARRAY['acme']")
    # ranked by revenue: P1 (240) before P3 (25)
    first_column_equal(page, "products-performance", ["P1", "P3"])
    wait_sql(page, "products-by_category", "ARRAY['acme']")
    df = queries.product_rollup(
        reader,
        START,
        END,
        "product_category",
        categories=["shoes", "bags"],
        brands=["acme"],
        price_min=12,
        price_max=200,
    ).df
    assert_table_equals(page, "products-by_category", df)

    page.evaluate("Shiny.setInputValue('products-filters-price', [50, 90])")
    wait_sql(page, "products-performance", "p.product_price >= 50")
    first_column_equal(page, "products-performance", ["P1"])

    controller.InputDateRange(page, "products-filters-dates").set(("2026-03-04", "2026-03-04"))
    wait_sql(page, "products-by_brand", "'2026-03-04'::date")
    df = queries.product_rollup(
        reader,
        date(2026, 3, 4),
        date(2026, 3, 4),
        "product_brand",
        categories=["shoes", "bags"],
        brands=["acme"],
        price_min=50,
        price_max=90,
    ).df
    assert_table_equals(page, "products-by_brand", df)
    no_output_errors(page)


def test_activity_page(page, app_url, reader):
    open_app(page, app_url)
    controller.NavsetBar(page, "page").set("activity")
    wait_sql(page, "activity-heatmap", "agg_events_hourly")
    names = ["add_to_cart", "page_view", "product_view", "purchase"]
    _, _, grid = k.expected_local("UTC", names, START, END)
    eventually(lambda: _assert_equal(heatmap_cells(page), dict(grid)))

    controller.InputSelect(page, "activity-tz").set("Asia/Kolkata")
    wait_sql(page, "activity-heatmap", "'Asia/Kolkata'")
    _, days, grid = k.expected_local("Asia/Kolkata", names, START, END)
    eventually(lambda: _assert_equal(heatmap_cells(page), dict(grid)))
    wait_sql(page, "activity-hourly", "'Asia/Kolkata'")

    def hours_at_half_past():  # UTC+05:30
        hours = [x for t in figure_data(page, "activity-hourly") for x in t["x"]]
        assert hours and all(x.endswith((":30:00", ":30")) for x in hours)

    eventually(hours_at_half_past)
    wait_sql(page, "activity-daily", "'Asia/Kolkata'")

    def daily_shown():
        return {
            (date.fromisoformat(x[:10]), t["name"]): y
            for t in figure_data(page, "activity-daily")
            for x, y in zip(t["x"], t["y"], strict=True)
        }

    eventually(lambda: _assert_equal(daily_shown(), dict(days)))

    controller.InputRadioButtons(page, "activity-breakdown").set("traffic_source")
    wait_sql(page, "activity-breakdown_card", "h.traffic_source as breakdown")
    df = queries.activity_breakdown(reader, START, END, "traffic_source", "Asia/Kolkata", names).df
    assert_table_equals(page, "activity-breakdown_card", df)

    controller.InputSelectize(page, "activity-filters-events").set(["purchase"])
    controller.InputSelectize(page, "activity-filters-devices").set(["desktop", "tablet"])
    controller.InputSelectize(page, "activity-filters-sources").set(["newsletter", "facebook"])
    wait_sql(
        page,
        "activity-breakdown_card",
        "ARRAY['purchase']",
        "ARRAY['desktop','tablet']",
        "ARRAY['newsletter','facebook']",
    )
    df = queries.activity_breakdown(
        reader,
        START,
        END,
        "traffic_source",
        "Asia/Kolkata",
        ["purchase"],
        ["desktop", "tablet"],
        ["newsletter", "facebook"],
    ).df
    assert_table_equals(page, "activity-breakdown_card", df)
    wait_sql(page, "activity-weekday", "ARRAY['desktop','tablet']")
    df = queries.conversion_by_weekday(
        reader, START, END, ["desktop", "tablet"], ["newsletter", "facebook"]
    ).df
    assert_table_equals(page, "activity-weekday", df)

    controller.InputDateRange(page, "activity-filters-dates").set(("2026-03-03", "2026-03-04"))
    wait_sql(page, "activity-weekday", "'2026-03-03'::date")
    df = queries.conversion_by_weekday(
        reader, date(2026, 3, 3), END, ["desktop", "tablet"], ["newsletter", "facebook"]
    ).df
    assert_table_equals(page, "activity-weekday", df)
    no_output_errors(page)


# --- hostile input, empty warehouse, outage ---------------------------------------------------


def test_injection_through_browser_inputs_changes_nothing(page, app_url, admin):
    def counts():
        with admin.cursor() as cur:
            cur.execute(
                "select (select count(*) from analytics.fact_events), (select count(*) from analytics.dim_products)"
            )
            return cur.fetchone()

    before = counts()
    attack = "mobile' or '1'='1'; drop table analytics.fact_events; --"
    open_app(page, app_url)
    page.evaluate("a => Shiny.setInputValue('overview-filters-devices', [a])", attack)
    wait_sql(page, "overview-funnel", "or ''1''=''1''")
    counts_equal(page, "overview-funnel", [0, 0, 0, 0, 0])
    expect(page.locator("#overview-products-message .widget-empty")).to_be_visible()

    controller.NavsetBar(page, "page").set("funnel")
    page.evaluate("Shiny.setInputValue('funnel-breakdown', 'device_type; drop table analytics.fact_events')")
    expect(page.locator("#funnel-breakdown_card-message .widget-error")).to_be_visible()

    controller.NavsetBar(page, "page").set("activity")
    controller.InputSelect(page, "activity-tz").set("Asia/Kolkata")
    wait_sql(page, "activity-heatmap", "'Asia/Kolkata'")
    page.evaluate("Shiny.setInputValue('activity-tz', \"UTC'; drop table analytics.fact_events; --\")")
    expect(page.locator("#activity-heatmap-message .widget-error")).to_have_text("That choice is not valid.")
    assert "drop table" not in sql_of(page, "activity-heatmap")  # not in the fixed list: no query
    controller.NavsetBar(page, "page").set("products")
    page.evaluate("a => Shiny.setInputValue('products-filters-categories', [a])", attack)
    wait_sql(page, "products-performance", "or ''1''=''1''")
    expect(page.locator("#products-performance-message .widget-empty")).to_be_visible()
    page.evaluate("Shiny.setInputValue('products-rank', 'views; drop table analytics.dim_products')")
    expect(page.locator("#products-performance-message .widget-error")).to_be_visible()
    page.evaluate(
        "Shiny.setInputValue('products-filters-price', ['0; drop table analytics.dim_products', 5])"
    )
    # not a number: no price filter
    wait_sql(page, "products-rare", "NULL::numeric is null or p.product_price >=")
    no_output_errors(page)
    assert counts() == before


def test_empty_warehouse_shows_messages_not_errors(page, empty_db, start_server):
    server = start_server(empty_db)
    page.goto(server.url)
    wait_idle(page)
    nav = controller.NavsetBar(page, "page")
    for tab in ["overview", "funnel", "products", "activity"]:
        nav.set(tab)
        wait_idle(page)
        no_output_errors(page)
        expect(page.locator(".widget-empty:visible").first).to_be_visible()  # waits while it renders
    expect(page.locator(".health-status")).to_have_text("Data no data")


class TcpProxy:
    """A loopback TCP relay to PostgreSQL that can be cut and restored (a database outage)."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(32)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for s in self._conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self._conns.clear()


def test_database_outage_shows_banner_and_recovers(page, known_db, start_server):
    proxy = TcpProxy(int(known_db["PGPORT"]))
    proxy.start()
    try:
        env = dict(known_db, PGPORT=str(proxy.port))
        server = start_server(env)
        open_app(page, server.url)
        counts_equal(page, "overview-funnel", k.expected_funnel())
        expect(page.locator(".db-banner")).to_have_count(0)

        proxy.stop()
        expect(page.locator(".db-banner")).to_be_visible(timeout=30_000)
        controller.InputSelectize(page, "overview-filters-devices").set(["tablet"])
        expect(page.locator("#overview-funnel-message .widget-error")).to_be_visible(timeout=30_000)
        no_output_errors(page)

        time.sleep(1)
        proxy.start()
        expect(page.locator(".db-banner")).to_have_count(0, timeout=30_000)
        wait_sql(page, "overview-funnel", "ARRAY['tablet']")
        expect(page.locator("#overview-funnel-message .widget-error")).to_have_count(0)
        counts_equal(page, "overview-funnel", k.expected_funnel(["tablet"]))
        no_output_errors(page)
    finally:
        proxy.stop()


def test_serve_redirects_root_to_the_prefix(app_url):
    import urllib.request

    root = app_url.replace("/clickstream-analytics/", "/")
    with urllib.request.urlopen(root) as resp:
        assert resp.url == app_url
        assert "Clickstream analytics" in resp.read().decode()


def test_import_shiny_still_gives_the_library():
    import shiny

    assert hasattr(shiny, "App") and "site-packages" in shiny.__file__


def test_app_started_while_database_down_fills_in_when_it_is_back(page, known_db, start_server):
    proxy = TcpProxy(int(known_db["PGPORT"]))  # not started: the database is unreachable
    try:
        server = start_server(dict(known_db, PGPORT=str(proxy.port)))
        page.goto(server.url)
        expect(page.locator(".db-banner")).to_be_visible(timeout=30_000)
        expect(page.locator("#overview-funnel-message .widget-error")).to_be_visible()
        no_output_errors(page)

        proxy.start()
        expect(page.locator(".db-banner")).to_have_count(0, timeout=30_000)
        wait_sql(page, "overview-funnel", "agg_funnel_daily")
        controller.InputDateRange(page, "overview-filters-dates").expect_value(
            (START.isoformat(), END.isoformat())
        )
        counts_equal(page, "overview-funnel", k.expected_funnel())
        controller.InputSelectize(page, "overview-filters-devices").set(["mobile"])
        wait_sql(page, "overview-funnel", "ARRAY['mobile']")
        counts_equal(page, "overview-funnel", k.expected_funnel(["mobile"]))
        no_output_errors(page)
    finally:
        proxy.stop()
