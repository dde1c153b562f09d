"""Overview: the funnel, events per day and the top products, for a date range, event types,
devices and traffic sources."""

from __future__ import annotations

import plots
import queries
from filters import filter_bar_server, filter_bar_ui
from querying import SessionDb
from widgets import widget_server, widget_ui

from pages.funnel import funnel_figure, steps_table
from shiny import Inputs, Outputs, Session, module, ui

FILTERS = ("dates", "events", "devices", "sources")


@module.ui
def overview_ui(c: dict):
    return ui.nav_panel(
        "Overview",
        filter_bar_ui("filters", c, *FILTERS),
        ui.layout_columns(
            widget_ui("funnel", "User journey funnel (sessions)", kind="both"),
            widget_ui("daily", "Events per day", kind="plot"),
            col_widths={"sm": 12, "lg": 6},
        ),
        widget_ui("products", "Top products", kind="table"),
        value="overview",
    )


@module.server
def overview_server(input: Inputs, output: Outputs, session: Session, db: SessionDb):
    bar = filter_bar_server("filters", FILTERS, db)
    results = db.side_by_side(
        lambda: (bar.dates(), bar.segment()),
        {
            "funnel": lambda: (queries.funnel_steps, *bar.dates(), bar.segment()),
            "daily": lambda: (queries.events_per_day, *bar.dates(), bar.events(), bar.segment()),
            "products": lambda: (
                queries.product_performance,
                *bar.dates(),
                "purchases",
                {**bar.segment(), "limit": 20},
            ),
        },
    )
    widget_server("funnel", results["funnel"], "both", funnel_figure, steps_table, filename="funnel.csv")
    widget_server(
        "daily",
        results["daily"],
        "plot",
        lambda df: plots.lines_by_group(df, "event_date", "event_name", "events"),
        filename="events_per_day.csv",
    )
    widget_server(
        "products",
        results["products"],
        "table",
        to_table=lambda df: df.drop(columns=["is_high_attention_low_conversion"]),
        filename="top_products.csv",
    )
