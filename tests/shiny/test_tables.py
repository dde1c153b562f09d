"""Tables read well: at least ten rows without inner scrolling, numbers right-aligned with
thousands separators, money with its currency and rates with %; the CSV keeps the raw numbers."""

from __future__ import annotations

import formatting as fmt
import known_events as k
import oracle
import pandas as pd
from playwright.sync_api import Page
from shiny.playwright import controller
from test_app_browser import eventually, open_app, table_header, table_rows, wait_sql
from widgets import TABLE_ROWS_SHOWN, table_height


def test_table_formatting():
    df = pd.DataFrame(
        {
            "product_id": ["P1", "P2"],
            "views": [1234567, 5],
            "revenue": [1240.5, None],
            "purchase_rate_pct": [50.0, None],
            "conversion_pct": [12.5, 3.0],
            "is_flagged": [True, False],
        }
    )
    shown, right = fmt.table(df)
    assert shown.to_dict("list") == {
        "product_id": ["P1", "P2"],
        "views": ["1,234,567", "5"],
        "revenue": ["$1,240.50", ""],
        "purchase_rate_pct": ["50.0%", ""],
        "conversion_pct": ["12.50%", "3.00%"],
        "is_flagged": [True, False],
    }
    assert right == [1, 2, 3, 4]


def test_tables_grow_to_ten_rows_and_more():
    assert TABLE_ROWS_SHOWN >= 10
    assert table_height(TABLE_ROWS_SHOWN) is None  # grows to fit: no inner scrolling
    assert int(table_height(50).removesuffix("px")) >= 10 * 37


def grid_fits(page: Page, widget: str) -> dict:
    return page.evaluate(
        "id => { const el = document.querySelector('#' + id + ' .shiny-data-grid > div') ||"
        " document.querySelector('#' + id + ' .shiny-data-grid');"
        " const cells = Array.from(document.querySelectorAll('#' + id + ' tbody td'));"
        " return {scroll: el.scrollHeight, client: el.clientHeight,"
        " aligns: cells.map(td => [td.cellIndex, getComputedStyle(td).textAlign])}; }",
        f"{widget}-table",
    )


def test_products_table_is_formatted_and_does_not_scroll(page, app_url):
    open_app(page, app_url)
    controller.NavsetBar(page, "page").set("products")
    wait_sql(page, "products-performance", "measured.views desc")
    want = oracle.products(price_min=12, price_max=200)

    def formatted():
        header = table_header(page, "products-performance")
        rows = {r[0]: dict(zip(header, r, strict=True)) for r in table_rows(page, "products-performance")}
        assert set(rows) == set(want)
        for pid, m in want.items():
            assert rows[pid]["revenue"] == f"${m['revenue']:,.2f}", pid
            assert rows[pid]["product_price"] == f"${k.PRODUCTS[pid][3]:,.2f}", pid
            assert rows[pid]["views"] == f"{m['views']:,}", pid
            if m["views"]:
                assert rows[pid]["purchase_rate_pct"] == f"{round(100 * m['purchases'] / m['views'], 1):.1f}%"
        fits = grid_fits(page, "products-performance")
        assert fits["scroll"] <= fits["client"] + 1, fits  # every row shows, no inner scrollbar
        number_columns = {header.index(c) for c in ("views", "revenue", "product_price", "purchase_rate_pct")}
        for index, align in fits["aligns"]:
            if index in number_columns:
                assert align == "right", (header[index], align)
            if header[index] in ("product_id", "product_name"):
                assert align != "right"

    eventually(formatted)


def rows_in_view(page: Page, widget: str) -> dict:
    """Rows of a grid drawn entirely inside its scroll box, and the rows it holds."""
    return page.evaluate(
        "id => { const grid = document.querySelector('#' + id + ' .shiny-data-grid');"
        " let box = grid; for (const el of grid.querySelectorAll('*')) {"
        "   const s = getComputedStyle(el).overflowY; if (s === 'auto' || s === 'scroll') { box = el; break; } }"
        " const b = box.getBoundingClientRect();"
        " const rows = Array.from(grid.querySelectorAll('tbody tr'));"
        " return {rows: rows.length, shown: rows.filter(r => r.getBoundingClientRect().bottom <= b.bottom + 1).length,"
        " scrolls: box.scrollHeight > box.clientHeight + 1}; }",
        f"{widget}-table",
    )


def test_a_twelve_row_table_shows_every_row_without_scrolling(page, app_url):
    """Events by device: 3 device types × the 4 time-series event types = 12 rows."""
    open_app(page, app_url)
    controller.NavsetBar(page, "page").set("activity")
    wait_sql(page, "activity-breakdown_card", "h.device_type as breakdown")

    def all_shown():
        view = rows_in_view(page, "activity-breakdown_card")
        assert view == {"rows": 12, "shown": 12, "scrolls": False}, view

    eventually(all_shown)


def test_a_long_table_shows_at_least_ten_rows_before_it_scrolls(page, app_url):
    """Events by device with every event type: 17 rows (tablets never searched), in a box that
    shows at least ten of them, each on one line."""
    open_app(page, app_url)
    controller.NavsetBar(page, "page").set("activity")
    controller.InputSelectize(page, "activity-filters-events").set(
        ["page_view", "search", "product_view", "add_to_cart", "checkout_start", "purchase"]
    )
    wait_sql(page, "activity-breakdown_card", "'checkout_start'", "'search'")

    def ten_shown():
        view = rows_in_view(page, "activity-breakdown_card")
        assert view["rows"] == 17 and view["shown"] >= 10, view

    eventually(ten_shown)
    white_space = (
        "() => getComputedStyle(document.querySelector('#activity-breakdown_card-table tbody td')).whiteSpace"
    )
    assert page.evaluate(white_space) == "nowrap"
