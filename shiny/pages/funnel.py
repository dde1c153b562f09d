"""Funnel: the standard funnel (KPIs: overall conversion, product view → checkout, biggest
drop-off, median time to convert; sessions at each step; the funnel side by side per device,
source or week) and, once steps are chosen, the person's own funnel from the builder
(`funnel_builder.py`): its chart and table for the dates, and the same funnel for the period of
equal length just before, side by side."""

from __future__ import annotations

import formatting as fmt
import funnel_spec as fs
import pandas as pd
import plots
import queries
import viewstate as vs
from filters import SharedFilters, filter_bar_server, filter_bar_ui, latest_choices, startup_choices
from funnel_builder import builder_server, builder_ui
from inputs import InvalidInput, checked_choice
from querying import SessionDb
from widgets import widget_server, widget_ui

from shiny import Inputs, Outputs, Session, module, reactive, render, ui

FILTERS = ("dates", "devices", "sources")
BREAKDOWN_LABELS = {"device_type": "Device", "traffic_source": "Traffic source", "week": "Week"}
BREAKDOWN = vs.Choice("breakdown", "breakdown", BREAKDOWN_LABELS, "device_type")
# the page's view in the URL (viewstate.py): the standard funnel's breakdown, the builder's funnel
URL_PARAMS = (*vs.SHARED, BREAKDOWN, fs.BUILDER)
MEDIAN_TIME = "Median time from previous step"


def _when(mode: str, initial: str) -> str:
    """A conditional panel's condition: the builder's mode is `mode` (before the server says,
    the mode the URL asks for)."""
    return f"(output['builder-mode'] || '{initial}') === '{mode}'"


@module.ui
def funnel_ui(c: dict, state: dict):
    builder = state[fs.BUILDER]
    initial = "custom" if builder.steps else "standard"
    return ui.nav_panel(
        "Funnel",
        filter_bar_ui(
            "filters",
            c,
            *FILTERS,
            ui.panel_conditional(
                _when("standard", initial),
                ui.input_radio_buttons(
                    "breakdown", "Breakdown", BREAKDOWN_LABELS, selected=state[BREAKDOWN], inline=True
                ),
            ),
            state=state,
        ),
        ui.panel_conditional(
            _when("custom", initial),
            ui.output_ui("custom_summary"),
            ui.layout_columns(
                widget_ui("custom", "Your funnel", kind="both"),
                widget_ui("custom_previous", "The same funnel, previous period", kind="both"),
                col_widths={"sm": 12, "lg": 6},
                class_="custom-funnel",
            ),
        ),
        builder_ui("builder", c, builder),
        ui.panel_conditional(
            _when("standard", initial),
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
        ),
        value="funnel",
    )


def custom_table(df: pd.DataFrame, count: str, breakdown: str) -> pd.DataFrame:
    """The builder's rows as a person reads them: words as headers, rates in %, the median
    time from the step before in readable units."""
    out = pd.DataFrame()
    if breakdown:
        out[fs.BREAKDOWNS[breakdown].split(" (")[0]] = df["breakdown"].astype(str)
    out["Step"] = [f"{int(s)}. {n}" for s, n in zip(df["step"], df["step_name"], strict=True)]
    out[fs.COUNTS.get(count, "Sessions")] = df["entities"].astype("int64")
    out["% of first step"] = df["pct_of_first"].astype(float).round(1)
    out["% of previous step"] = df["pct_of_previous"].astype(float).round(1)
    out[MEDIAN_TIME] = [
        fmt.duration(v) if int(s) > 1 else ""
        for s, v in zip(df["step"], df["median_seconds_from_previous"], strict=True)
    ]
    return out


def _right_align_time(df: pd.DataFrame) -> list:
    return [{"cols": [list(df.columns).index(MEDIAN_TIME)], "style": {"text-align": "right"}}]


def _conversion(r) -> float | None:
    """The share of the first step reaching the last (no breakdown), or None."""
    if r.error or r.empty or r.df["breakdown"].notna().any():
        return None
    last = r.df["pct_of_first"].iloc[-1]
    return None if last is None or pd.isna(last) else float(last)


def _without_empty_funnel(result):
    """A funnel nobody entered (no entity at step 1) as no rows: its card says "No data"."""

    @reactive.calc
    def shown():
        r = result()
        if r.error or r.empty or int(r.df["entities"].max()) > 0:
            return r
        return queries.QueryResult(name=r.name, sql=r.sql, df=r.df.iloc[0:0])

    return shown


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
    """Returns the page's view (for the URL): a function reading its inputs and the builder."""
    bar = filter_bar_server("filters", FILTERS, db, shared, "funnel")
    opened = shared.restore("funnel", latest_choices()).get(fs.BUILDER) or fs.Builder()
    builder = builder_server("builder", db, bar, opened)
    unread = [db.state.choices_missing]  # the URL's steps could not be checked: no event names

    @reactive.effect
    @reactive.event(db.epoch, ignore_init=True)
    def _restore_builder():
        """The page was built while the database was down: show the URL's funnel now it is back."""
        if not unread[0]:
            return
        c = startup_choices()
        if not c["kinds"]:
            return
        unread[0] = False
        wanted = shared.restore("funnel", c).get(fs.BUILDER)
        if wanted and wanted.steps and not builder.state().steps:
            builder.apply(wanted)

    custom = db.side_by_side(
        lambda: (bar.dates(), bar.segment(), builder.state()),
        {
            "current": lambda: (queries.custom_funnel, builder.spec(), {}),
            "previous": lambda: (queries.custom_funnel, builder.spec(previous=True), {}),
        },
    )
    custom = {key: _without_empty_funnel(result) for key, result in custom.items()}

    def custom_figure(df):
        return plots.custom_funnel_figure(df, builder.state().count)

    def custom_rows(df):
        b = builder.state()
        return custom_table(df, b.count, b.breakdown)

    def nobody(previous: bool = False) -> str:
        start, end = bar.dates()
        if previous:
            start, end = queries.previous_period(start, end)
        counted = fs.COUNTS[builder.state().count].lower()
        said = f"No {counted} reached step 1 between {start} and {end}"
        return said + (
            " (does the warehouse hold data that far back?)." if previous else " with these filters."
        )

    widget_server(
        "custom",
        custom["current"],
        "both",
        custom_figure,
        custom_rows,
        _right_align_time,
        filename="funnel.csv",
        empty=nobody,
    )
    widget_server(
        "custom_previous",
        custom["previous"],
        "both",
        custom_figure,
        custom_rows,
        _right_align_time,
        filename="funnel_previous_period.csv",
        empty=lambda: nobody(previous=True),
    )

    @render.ui
    def custom_summary():
        b = builder.state()
        try:
            start, end = bar.dates()
            before = queries.previous_period(start, end)
        except (InvalidInput, OverflowError):
            return None
        if not b.steps:
            return None
        counted = fs.COUNTS[b.count].lower()
        order = "in this order" if b.order == "ordered" else "in any order"
        now, then = _conversion(custom["current"]()), _conversion(custom["previous"]())
        parts = [
            ui.span(
                f"{fs.COUNTS[b.count]} whose step 1 falls in {start} – {end} (UTC), ", class_="custom-period"
            ),
            ui.span(f"the {len(b.steps)} steps {order} within {b.window}; ", class_="custom-rule"),
            ui.span(f"previous period {before[0]} – {before[1]}.", class_="custom-previous-period"),
        ]
        if now is not None:
            change = f" (previous period: {fmt.pct(then)})" if then is not None else ""
            parts.append(
                ui.div(
                    ui.span(f"{fmt.pct(now)}", class_="fw-semibold custom-conversion"),
                    f" of the {counted} at step 1 reach step {len(b.steps)}{change}.",
                )
            )
        return ui.div(*parts, class_="small mb-2 custom-summary")

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
    return lambda: {**vs.read_state(session, URL_PARAMS, latest_choices()), fs.BUILDER: builder.state()}
