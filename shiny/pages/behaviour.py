"""Behaviour: journeys (top paths from session start, top paths that end in a purchase, the
flow from step to step as a Sankey), weekly retention cohorts (triangle and curves, for
visitors or for purchasers buying again) and channel attribution (first touch, last touch,
linear), for a date range, devices and traffic sources."""

from __future__ import annotations

import filters
import pandas as pd
import plotly.graph_objects as go
import plots
import viewstate as vs
from filters import SharedFilters, filter_bar_server, filter_bar_ui, latest_choices
from inputs import checked_choice
from queries import behaviour as q
from querying import SessionDb
from widgets import widget_server, widget_ui

from shiny import Inputs, Outputs, Session, module, ui

FILTERS = ("dates", "devices", "sources")
# the page types a page view's step is named by (the dbt macro page_type)
PAGE_TYPES = ("home", "product", "category", "other")
ANY_STEP = ""


def first_step_choices(event_names: list[str]) -> dict[str, str]:
    """The Sankey's first-step filter: any, a page type, or an event name the warehouse holds."""
    names = [n for n in sorted(event_names) if n != "page_view"]
    return {ANY_STEP: "Any", **{t: f"{t} (page)" for t in PAGE_TYPES}, **{n: n for n in names}}


def checked_first_step(value) -> str | None:
    """A page type or a known event name (None: any); anything else is refused."""
    allowed = {ANY_STEP, *PAGE_TYPES, *filters.KNOWN_EVENT_NAMES}
    return checked_choice(value, allowed) or None


FIRST_STEP = vs.Choice(
    "first_step", "first_step", lambda c: first_step_choices(c["kinds"].get("event_name", [])), ANY_STEP
)
COHORTS = vs.Choice("cohorts", "cohorts", q.RETENTION_KINDS, "visitors")
# the page's view in the URL (viewstate.py)
URL_PARAMS = (*vs.SHARED, FIRST_STEP, COHORTS)


@module.ui
def behaviour_ui(c: dict, state: dict):
    return ui.nav_panel(
        "Behaviour",
        filter_bar_ui(
            "filters",
            c,
            *FILTERS,
            ui.input_select(
                "first_step",
                "Flow: first step",
                first_step_choices(c["kinds"].get("event_name", [])),
                selected=state[FIRST_STEP],
            ),
            ui.input_radio_buttons(
                "cohorts", "Cohorts", q.RETENTION_KINDS, selected=state[COHORTS], inline=True
            ),
            state=state,
        ),
        ui.layout_columns(
            widget_ui(
                "paths",
                "Top paths from session start",
                kind="table",
                note="A path: the session's first steps (event, or page type of a page view), "
                "repeats collapsed; ' > …' when the session went on.",
            ),
            widget_ui(
                "purchase_paths",
                "Top paths that end in a purchase",
                kind="table",
                note="Paths that end in a purchase (the steps leading to the first purchase): "
                "as many steps as a path keeps, up to and including it; '… > ' when earlier "
                "steps were cut. "
                "Share: of all sessions with a purchase.",
            ),
            col_widths={"sm": 12, "lg": 6},
        ),
        widget_ui("flows", "Flow from step to step (sessions)", kind="plot"),
        ui.layout_columns(
            widget_ui(
                "retention",
                "Retention by weekly cohort (% of the cohort)",
                kind="table",
                note="Cohort: the ISO week (Monday, UTC) of the first visit (or first purchase); "
                "week 0 is the cohort itself. Cohorts whose week overlaps the dates.",
            ),
            widget_ui("retention_curves", "Retention curves", kind="plot"),
            col_widths={"sm": 12, "lg": 6},
        ),
        ui.layout_columns(
            widget_ui(
                "attribution",
                "Revenue by traffic source and attribution model",
                kind="both",
                note="Touches: the buyer's sessions in the 30 days before the purchase, up to the "
                "purchasing one. Orders of the dates (UTC).",
            ),
            col_widths={"sm": 12},
        ),
        value="behaviour",
    )


def flows_figure(df: pd.DataFrame) -> go.Figure:
    """A Sankey of step n -> step n + 1; a node is a step at its position ('2. product_view')."""
    nodes: dict[str, int] = {}

    def node(number: int, step: str) -> int:
        return nodes.setdefault(f"{number}. {step}", len(nodes))

    links = [
        (node(int(r.step_number), r.from_step), node(int(r.step_number) + 1, r.to_step), int(r.sessions))
        for r in df.itertuples(index=False)
    ]
    fig = go.Figure(
        go.Sankey(
            arrangement="snap",
            node={"label": list(nodes), "pad": 12, "thickness": 14, "color": "#2c7fb8"},
            link={
                "source": [s for s, _, _ in links],
                "target": [t for _, t, _ in links],
                "value": [v for _, _, v in links],
                "hovertemplate": "%{source.label} → %{target.label}: %{value} sessions<extra></extra>",
            },
        )
    )
    return fig


def retention_table(df: pd.DataFrame) -> pd.DataFrame:
    """The triangle: one row per cohort week with its users, one column per week since (the
    share retained, in %)."""
    if df.empty:
        return df
    sizes = df[df["weeks_since"] == 0].set_index("cohort_week")["cohort_users"]
    grid = df.pivot(index="cohort_week", columns="weeks_since", values="retained_pct")
    grid.columns = [f"week_{int(w)}_pct" for w in grid.columns]
    out = grid.reset_index()
    out.insert(1, "cohort_users", [int(sizes.get(w, 0)) for w in out["cohort_week"]])
    out["cohort_week"] = out["cohort_week"].astype(str)
    return out


def retention_figure(df: pd.DataFrame) -> go.Figure:
    """One line per cohort: % of the cohort retained, by weeks since the cohort week."""
    fig = go.Figure()
    for week, part in df.groupby("cohort_week", sort=True):
        fig.add_trace(
            go.Scatter(x=part["weeks_since"], y=part["retained_pct"], mode="lines+markers", name=str(week))
        )
    fig.update_layout(xaxis_title="weeks since the cohort week", yaxis_title="% of the cohort", xaxis_dtick=1)
    return fig


def attribution_figure(df: pd.DataFrame) -> go.Figure:
    return plots.bars_by_group(df, "traffic_source", "model", "revenue", "attributed revenue")


@module.server
def behaviour_server(input: Inputs, output: Outputs, session: Session, db: SessionDb, shared: SharedFilters):
    """Returns the page's view (for the URL): a function reading its inputs."""
    bar = filter_bar_server("filters", FILTERS, db, shared, "behaviour")
    results = db.side_by_side(
        lambda: (bar.dates(), bar.segment()),
        {
            "paths": lambda: (q.top_paths, *bar.dates(), bar.segment()),
            "purchase_paths": lambda: (q.top_purchase_paths, *bar.dates(), bar.segment()),
            "flows": lambda: (
                q.path_flows,
                *bar.dates(),
                checked_first_step(input.first_step()),
                bar.segment(),
            ),
            "retention": lambda: (
                q.retention_weekly,
                *bar.dates(),
                checked_choice(input.cohorts(), q.RETENTION_KINDS),
                bar.segment(),
            ),
            "attribution": lambda: (q.attribution_by_channel, *bar.dates(), bar.segment()),
        },
    )
    widget_server("paths", results["paths"], "table", filename="top_paths.csv")
    widget_server("purchase_paths", results["purchase_paths"], "table", filename="top_purchase_paths.csv")
    widget_server("flows", results["flows"], "plot", flows_figure, filename="path_flows.csv")
    widget_server(
        "retention", results["retention"], "table", to_table=retention_table, filename="retention_weekly.csv"
    )
    widget_server(
        "retention_curves", results["retention"], "plot", retention_figure, filename="retention_weekly.csv"
    )
    widget_server(
        "attribution",
        results["attribution"],
        "both",
        attribution_figure,
        filename="attribution_by_channel.csv",
    )
    return lambda: vs.read_state(session, URL_PARAMS, latest_choices())
