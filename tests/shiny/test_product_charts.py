"""The Products page's charts: the ranking bars (top products by the metric chosen in *Rank
by*) and the scatter of views against purchases per view with the high-attention,
low-conversion quadrant shaded, checked against the plain-Python oracle on the known events."""

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

START, END = k.FIRST_DATE, k.LAST_DATE
FILTER_CASES = [
    {},
    {"devices": ["mobile"]},
    {"sources": ["google", "facebook"]},
    {"categories": ["shoes", "bags"], "brands": ["acme", "globex"]},
    {"price_min": 20, "price_max": 150},
    {"start": date(2026, 3, 3), "end": date(2026, 3, 4), "devices": ["desktop", "mobile"]},
]


@pytest.mark.parametrize("filters", FILTER_CASES)
def test_attention_query_equals_the_oracle(reader, filters):
    f = dict(filters)
    start, end = f.pop("start", START), f.pop("end", END)
    got = queries.product_attention(reader, start, end, **f).df
    want = oracle.attention(start=start, end=end, **f)
    assert list(got["product_id"]) == [r["product_id"] for r in want]
    for g, w in zip(got.to_dict("records"), want, strict=True):
        for key, value in w.items():
            assert g[key] == pytest.approx(value), (g["product_id"], key)


@pytest.mark.parametrize("rank_by", ["views", "add_to_carts", "purchases", "revenue", "purchase_rate"])
@pytest.mark.parametrize("filters", FILTER_CASES[:4])
def test_ranking_bars_equal_the_oracle(reader, rank_by, filters):
    f = dict(filters)
    start, end = f.pop("start", START), f.pop("end", END)
    df = queries.product_performance(reader, start, end, rank_by, **f).df
    column = "purchase_rate_pct" if rank_by == "purchase_rate" else rank_by
    bar = plots.ranking_figure(df, column, rank_by).data[0]
    want = oracle.ranking(rank_by, start=start, end=end, **f)
    names = [f"{k.PRODUCTS[pid][0]} ({pid})" for pid, _ in want]
    assert list(bar.y)[::-1] == names  # the first product at the top
    got = [None if pd.isna(v) else float(v) for v in list(bar.x)[::-1]]
    assert got == pytest.approx([None if v is None else float(v) for _, v in want])


def test_attention_figure_shades_the_quadrant():
    rows = oracle.attention()
    fig = plots.attention_figure(pd.DataFrame(rows))
    (shade,) = fig.layout.shapes[:1]
    assert shade.type == "rect"
    assert (shade.x0, shade.y0, shade.y1) == (rows[0]["views_p75"], 0, rows[0]["rate_p25_pct"])
    flagged = next(t for t in fig.data if t.name == "high attention, low conversion")
    assert [c[0] for c in flagged.customdata] == ["P2"]
    assert "%{customdata[1]}" in flagged.hovertemplate  # hover names the product
    assert len(fig.layout.shapes) == 3  # the shaded quadrant and its two quartile lines


def test_products_page_charts(page, app_url):
    open_app(page, app_url)
    controller.NavsetBar(page, "page").set("products")
    wait_sql(page, "products-performance", "measured.views desc")
    # the page starts with the price slider at its bounds (12..200): every product
    want = oracle.ranking("views", price_min=12, price_max=200)

    def bars_are(want):
        (bar,) = figure_data(page, "products-performance")
        assert bar["y"][::-1] == [f"{k.PRODUCTS[pid][0]} ({pid})" for pid, _ in want]
        assert bar["x"][::-1] == pytest.approx([v for _, v in want])

    eventually(lambda: bars_are(want))

    def points_are(want):
        traces = figure_data(page, "products-attention")
        points = sorted((x, round(y, 9)) for t in traces for x, y in zip(t["x"], t["y"], strict=True))
        assert points == sorted((r["views"], round(r["purchase_rate_pct"], 9)) for r in want)

    eventually(lambda: points_are(oracle.attention(price_min=12, price_max=200)))

    controller.InputSelect(page, "products-rank").set("revenue")
    wait_sql(page, "products-performance", "measured.revenue desc")
    eventually(lambda: bars_are(oracle.ranking("revenue", price_min=12, price_max=200)))

    controller.InputSelectize(page, "products-filters-categories").set(["shoes", "bags"])
    wait_sql(page, "products-attention", "ARRAY['shoes','bags']")
    f = {"categories": ["shoes", "bags"], "price_min": 12, "price_max": 200}
    eventually(lambda: bars_are(oracle.ranking("revenue", **f)))
    eventually(lambda: points_are(oracle.attention(**f)))
    no_output_errors(page)
