"""Products: product performance ranked by a chosen metric (a bar chart of the top products and
the table, high attention with low conversion highlighted), views against purchases per view
(the high-attention, low-conversion quadrant shaded), roll-ups by category and brand, and the
rarely viewed products, for a date range, categories, brands and a price range."""

from __future__ import annotations

import pandas as pd
import plots
import queries
import viewstate as vs
from filters import SharedFilters, filter_bar_server, filter_bar_ui, latest_choices
from inputs import checked_choice
from querying import SessionDb
from widgets import widget_server, widget_ui

from shiny import Inputs, Outputs, Session, module, ui

FILTERS = ("dates", "categories", "brands", "price")
RANKINGS = {
    "views": "Views",
    "add_to_carts": "Add-to-carts",
    "purchases": "Purchases (units)",
    "revenue": "Revenue",
    "purchase_rate": "Purchases per view",
}
# the column of `product_performance` a ranking's bars show
RANKING_COLUMNS = {"purchase_rate": "purchase_rate_pct"}
RANK = vs.Choice("rank", "rank", RANKINGS, "views")
# the page's view in the URL (viewstate.py): the dates (no device or source filter here)
URL_PARAMS = (
    vs.DATES,
    vs.Known("category", "filters-categories", "product_category"),
    vs.Known("brand", "filters-brands", "product_brand"),
    vs.PriceRange(),
    RANK,
)


@module.ui
def products_ui(c: dict, state: dict):
    return ui.nav_panel(
        "Products",
        filter_bar_ui(
            "filters",
            c,
            *FILTERS,
            ui.input_select("rank", "Rank by", RANKINGS, selected=state[RANK]),
            state=state,
        ),
        ui.layout_columns(
            widget_ui(
                "performance",
                "Product performance",
                kind="both",
                note="Ranked by the metric chosen above. Highlighted: high attention, low conversion (views "
                "in the top quartile, purchases per view in the bottom quartile).",
            ),
            widget_ui(
                "attention",
                "Attention against conversion",
                kind="plot",
                note="One point per product (the 500 most viewed): views against units bought per 100 views. "
                "Shaded: high attention, low conversion (dotted: the quartiles).",
            ),
            col_widths={"sm": 12, "lg": 6},
        ),
        ui.layout_columns(
            widget_ui("by_category", "By category", kind="both"),
            widget_ui("by_brand", "By brand", kind="both"),
            col_widths={"sm": 12, "lg": 6},
        ),
        widget_ui("rare", "Rarely viewed products (promotion candidates)", kind="table"),
        value="products",
    )


def _flag_styles(df: pd.DataFrame) -> list:
    rows = [i for i, flagged in enumerate(df["is_high_attention_low_conversion"]) if flagged]
    if not rows:
        return []
    return [{"rows": rows, "class": "flagged-row", "style": {"background-color": "#fde0c5"}}]


@module.server
def products_server(input: Inputs, output: Outputs, session: Session, db: SessionDb, shared: SharedFilters):
    """Returns the page's view (for the URL): a function reading its inputs."""
    bar = filter_bar_server("filters", FILTERS, db, shared, "products")
    results = db.side_by_side(
        lambda: (bar.dates(), bar.products()),
        {
            "performance": lambda: (
                queries.product_performance,
                *bar.dates(),
                checked_choice(input.rank(), RANKINGS),
                bar.products(),
            ),
            "attention": lambda: (queries.product_attention, *bar.dates(), bar.products()),
            "category": lambda: (queries.product_rollup, *bar.dates(), "product_category", bar.products()),
            "brand": lambda: (queries.product_rollup, *bar.dates(), "product_brand", bar.products()),
            "rare": lambda: (queries.rarely_viewed_products, *bar.dates(), bar.products()),
        },
    )

    def ranking(df: pd.DataFrame):
        rank = input.rank()
        label = RANKINGS[rank] + (" (%)" if rank == "purchase_rate" else "")
        return plots.ranking_figure(df, RANKING_COLUMNS.get(rank, rank), label)

    widget_server(
        "performance",
        results["performance"],
        "both",
        ranking,
        styles=_flag_styles,
        filename="products.csv",
    )
    widget_server("attention", results["attention"], "plot", plots.attention_figure, filename="attention.csv")
    widget_server(
        "by_category",
        results["category"],
        "both",
        lambda df: plots.rollup_figure(df, "product_category"),
        filename="categories.csv",
    )
    widget_server(
        "by_brand",
        results["brand"],
        "both",
        lambda df: plots.rollup_figure(df, "product_brand"),
        filename="brands.csv",
    )
    widget_server("rare", results["rare"], "table", filename="rarely_viewed.csv")
    return lambda: vs.read_state(session, URL_PARAMS, latest_choices())
