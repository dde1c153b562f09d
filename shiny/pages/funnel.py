"""Funnel: KPIs (overall conversion, product view → checkout, biggest drop-off, median time to
convert), sessions at each step, and the funnel side by side per device, source or week."""

from __future__ import annotations

import pandas as pd
import plots
import queries
import viewstate as vs
from filters import SharedFilters, filter_bar_server, filter_bar_ui, latest_choices
from inputs import checked_choice
from querying import SessionDb
from widgets import widget_server, widget_ui

from shiny import Inputs, Outputs, Session, module, render, ui

FILTERS = ("dates", "devices", "sources")
BREAKDOWN_LABELS = {"device_type": "Device", "traffic_source": "Traffic source", "week": "Week"}
BREAKDOWN = vs.Choice("breakdown", "breakdown", BREAKDOWN_LABELS, "device_type")
# the page's view in the URL (viewstate.py)
URL_PARAMS = (*vs.SHARED, BREAKDOWN)


@module.ui
def funnel_ui(c: dict, state: dict):
    return ui.nav_panel(
        "Funnel",
        filter_bar_ui(
            "filters",
            c,
            *FILTERS,
            ui.input_radio_buttons(
                "breakdown", "Breakdown", BREAKDOWN_LABELS, selected=state[BREAKDOWN], inline=True
            ),
            state=state,
        ),
        ui.output_ui("kpis"),
        ui.tags.details(
            ui.tags.summary("Show SQL of these figures", class_="small text-muted"),
            ui.output_code("kpis_sql", placeholder=False),
            class_="sql-details mb-2",
        ),
        ui.layout_columns(
            widget_ui("steps", "Sessions at each step", kind="both"),
            widget_ui("breakdown_card", "Funnel side by side", kind="both"),
            col_widths={"sm": 12, "lg": 6},
        ),
        value="funnel",
    )


def steps_table(df):
    """The funnel's rows as a table: step labels from the dbt project, no step order."""
    labels = queries.step_labels()
    out = df.drop(columns=["step_order"]).copy()
    out["step"] = [labels.get(s, s) for s in out["step"]]
    return out


def funnel_figure(df):
    return plots.funnel_figure(df, queries.step_labels())


def _minutes(seconds) -> str:
    if seconds is None or pd.isna(seconds):
        return "–"
    return f"{float(seconds) / 60:.1f} min"


@module.server
def funnel_server(input: Inputs, output: Outputs, session: Session, db: SessionDb, shared: SharedFilters):
    """Returns the page's view (for the URL): a function reading its inputs."""
    bar = filter_bar_server("filters", FILTERS, db, shared, "funnel")
    results = db.side_by_side(
        lambda: (bar.dates(), bar.segment()),
        {
            "steps": lambda: (queries.funnel_steps, *bar.dates(), bar.segment()),
            "breakdown": lambda: (
                queries.funnel_breakdown,
                *bar.dates(),
                checked_choice(input.breakdown(), BREAKDOWN_LABELS),
                bar.segment(),
            ),
            "time": lambda: (queries.funnel_time_to_convert, *bar.dates(), bar.segment()),
        },
    )
    steps_result, time_result = results["steps"], results["time"]

    @render.ui
    def kpis():
        steps, t = steps_result(), time_result()
        if steps.error or t.error:
            return ui.div(steps.error or t.error, class_="alert alert-warning py-2")
        if steps.empty or int(steps.df["sessions"].iloc[0]) == 0:
            return ui.div("No sessions for these filters.", class_="alert alert-light py-2 widget-empty")
        df = steps.df
        labels = queries.step_labels()
        drops = df.dropna(subset=["drop_off_pct"])
        worst = drops.loc[drops["drop_off_pct"].idxmax()] if not drops.empty else None
        row = t.df.iloc[0]
        worst_text = "–"
        if worst is not None:
            prev = df.loc[df["step_order"] == worst["step_order"] - 1, "step"].iloc[0]
            worst_text = f"{labels[prev]} → {labels[worst['step']]}: −{worst['drop_off_pct']:.1f}%"
        overall = df["overall_conversion_pct"].iloc[-1]
        return ui.layout_columns(
            ui.value_box("Overall conversion", ui.span(f"{overall:.1f}%", class_="kpi-overall")),
            ui.value_box(
                "Product view → checkout",
                ui.span(f"{int(row['product_view_to_checkout_sessions']):,}", class_="kpi-pv-checkout"),
                ui.p(f"of {int(row['product_view_sessions']):,} sessions with a product view"),
            ),
            ui.value_box("Biggest drop-off", ui.span(worst_text, class_="kpi-worst")),
            ui.value_box(
                "Median time to convert",
                ui.span(_minutes(row["median_seconds_to_purchase"]), class_="kpi-median"),
                ui.p(f"{int(row['purchasing_sessions']):,} purchasing sessions"),
            ),
            col_widths={"sm": 12, "md": 6, "lg": 3},
        )

    @render.code
    def kpis_sql():
        return "\n\n".join(r.sql or "-- no query ran" for r in (steps_result(), time_result()))

    widget_server("steps", steps_result, "both", funnel_figure, steps_table, filename="funnel_steps.csv")
    widget_server(
        "breakdown_card",
        results["breakdown"],
        "both",
        lambda df: plots.funnel_breakdown_figure(df, queries.step_labels()),
        filename="funnel_breakdown.csv",
    )
    return lambda: vs.read_state(session, URL_PARAMS, latest_choices())
