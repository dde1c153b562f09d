"""Overview: the KPI row (events, sessions, purchasing sessions, revenue, conversion, each
against the previous period of equal length), the funnel, events per day and the top
products, for a date range, event types, devices and traffic sources."""

from __future__ import annotations

import formatting as fmt
import plots
import queries
import viewstate as vs
from filters import SharedFilters, default_events, filter_bar_server, filter_bar_ui, latest_choices
from inputs import checked_choice
from querying import SessionDb
from widgets import widget_server, widget_ui

from pages.funnel import funnel_figure, steps_table
from shiny import Inputs, Outputs, Session, module, render, ui

FILTERS = ("dates", "events", "devices", "sources")
GRAIN_LABELS = {"auto": "Auto", "hour": "Hour", "day": "Day", "week": "Week"}
GRAIN = vs.Choice("grain", "grain", GRAIN_LABELS, "auto")
SCALE = vs.Choice("scale", "scale", plots.SCALES, "linear")
# the page's view in the URL (viewstate.py)
URL_PARAMS = (*vs.SHARED, vs.Known("events", "filters-events", "event_name", default_events), GRAIN, SCALE)


@module.ui
def overview_ui(c: dict, state: dict):
    return ui.nav_panel(
        "Overview",
        filter_bar_ui(
            "filters",
            c,
            *FILTERS,
            ui.input_radio_buttons(
                "grain", "Time series by", GRAIN_LABELS, selected=state[GRAIN], inline=True
            ),
            ui.input_radio_buttons("scale", "Scale", plots.SCALES, selected=state[SCALE], inline=True),
            state=state,
        ),
        ui.output_ui("kpis"),
        ui.tags.details(
            ui.tags.summary("Show SQL of these figures", class_="small text-muted"),
            ui.output_code("kpis_sql", placeholder=False),
            class_="sql-details mb-2",
        ),
        ui.layout_columns(
            widget_ui("funnel", "User journey funnel (sessions)", kind="both"),
            widget_ui(
                "daily",
                "Events over time (UTC)",
                kind="plot",
                note="Auto: by hour for one or two days, by week beyond half a year, else by day.",
            ),
            col_widths={"sm": 12, "lg": 6},
        ),
        widget_ui("products", "Top products", kind="table"),
        value="overview",
    )


# KPI -> (label, formatter, change in percentage points rather than %)
KPIS = {
    "events": ("Events", fmt.count, False),
    "sessions": ("Sessions", fmt.count, False),
    "purchasing_sessions": ("Purchasing sessions", fmt.count, False),
    "revenue": ("Revenue", fmt.money, False),
    "conversion_pct": ("Conversion", lambda v: fmt.pct(v, 2), True),
}


def kpi_row(df):
    """One value box per KPI: the period's figure and its change against the previous period."""
    current = df.loc[df["period"] == "current"].iloc[0]
    previous = df.loc[df["period"] == "previous"].iloc[0]
    n_days = (current["last_date"] - current["first_date"]).days + 1
    boxes = [
        ui.value_box(
            label,
            ui.span(show(current[key]), class_=f"kpi-{key}"),
            ui.p(
                fmt.change(current[key], previous[key], n_days, points), class_=f"kpi-change kpi-{key}-change"
            ),
        )
        for key, (label, show, points) in KPIS.items()
    ]
    return ui.layout_columns(*boxes, col_widths={"sm": 12, "md": 4, "lg": 2}, class_="kpi-row")


@module.server
def overview_server(input: Inputs, output: Outputs, session: Session, db: SessionDb, shared: SharedFilters):
    """Returns the page's view (for the URL): a function reading its inputs."""
    bar = filter_bar_server("filters", FILTERS, db, shared, "overview")

    def grain() -> str:
        chosen = checked_choice(input.grain(), GRAIN_LABELS)
        return queries.auto_grain(*bar.dates()) if chosen == "auto" else chosen

    results = db.side_by_side(
        lambda: (bar.dates(), bar.segment()),
        {
            "kpis": lambda: (queries.overview_kpis, *bar.dates(), bar.segment()),
            "funnel": lambda: (queries.funnel_steps, *bar.dates(), bar.segment()),
            "daily": lambda: (queries.events_over_time, *bar.dates(), grain(), bar.events(), bar.segment()),
            "products": lambda: (
                queries.product_performance,
                *bar.dates(),
                "purchases",
                {**bar.segment(), "limit": 20},
            ),
        },
    )
    kpi_result = results["kpis"]

    @render.ui
    def kpis():
        r = kpi_result()
        if r.error:
            return ui.div(r.error, class_="alert alert-warning py-2 widget-error")
        return kpi_row(r.df)

    @render.code
    def kpis_sql():
        return kpi_result().sql or "-- no query ran"

    widget_server("funnel", results["funnel"], "both", funnel_figure, steps_table, filename="funnel.csv")
    widget_server(
        "daily",
        results["daily"],
        "plot",
        lambda df: plots.time_series_figure(
            df, "period_start", "event_name", "events", grain(), checked_choice(input.scale(), plots.SCALES)
        ),
        filename="events_over_time.csv",
    )
    widget_server(
        "products",
        results["products"],
        "table",
        to_table=lambda df: df.drop(columns=["is_high_attention_low_conversion"]),
        filename="top_products.csv",
    )
    return lambda: vs.read_state(session, URL_PARAMS, latest_choices())
