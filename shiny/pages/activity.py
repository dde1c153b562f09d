"""Activity: events per hour and per day, the hour × weekday heatmap, events by device or
traffic source, conversion by weekday and sessions per campaign, in a chosen reporting time
zone (the warehouse stays in UTC; the zone is applied in the query)."""

from __future__ import annotations

import plots
import queries
import viewstate as vs
from filters import SharedFilters, default_events, filter_bar_server, filter_bar_ui, latest_choices
from inputs import checked_choice
from querying import SessionDb
from widgets import widget_server, widget_ui

from shiny import Inputs, Outputs, Session, module, ui

FILTERS = ("dates", "events", "devices", "sources")
TIME_ZONES = [
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Helsinki",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Sydney",
]
BREAKDOWN_LABELS = {"device_type": "Device", "traffic_source": "Traffic source"}
TZ = vs.Choice("tz", "tz", TIME_ZONES, "UTC")
BREAKDOWN = vs.Choice("breakdown", "breakdown", BREAKDOWN_LABELS, "device_type")
SCALE = vs.Choice("scale", "scale", plots.SCALES, "linear")
# the page's view in the URL (viewstate.py)
URL_PARAMS = (
    *vs.SHARED,
    TZ,
    vs.Known("events", "filters-events", "event_name", default_events),
    BREAKDOWN,
    SCALE,
)


@module.ui
def activity_ui(c: dict, state: dict):
    return ui.nav_panel(
        "Activity",
        filter_bar_ui(
            "filters",
            c,
            "dates",
            ui.input_select("tz", "Reporting time zone", TIME_ZONES, selected=state[TZ]),
            "events",
            "devices",
            "sources",
            ui.input_radio_buttons(
                "breakdown", "Breakdown", BREAKDOWN_LABELS, selected=state[BREAKDOWN], inline=True
            ),
            ui.input_radio_buttons(
                "scale", "Scale (events per hour)", plots.SCALES, selected=state[SCALE], inline=True
            ),
            dates_label="Dates (local)",
            state=state,
        ),
        ui.layout_columns(
            widget_ui("hourly", "Events per hour", kind="plot"),
            widget_ui("daily", "Events per day", kind="plot"),
            widget_ui("heatmap", "Hour of day × weekday", kind="plot"),
            widget_ui("breakdown_card", "Events by device / traffic source", kind="both"),
            widget_ui("weekday", "Conversion by weekday (UTC session date)", kind="both"),
            widget_ui("campaigns", "Sessions per day by campaign", kind="plot"),
            col_widths={"sm": 12, "lg": 6},
        ),
        value="activity",
    )


@module.server
def activity_server(input: Inputs, output: Outputs, session: Session, db: SessionDb, shared: SharedFilters):
    """Returns the page's view (for the URL): a function reading its inputs."""
    bar = filter_bar_server("filters", FILTERS, db, shared, "activity")

    def local() -> dict:
        tz = checked_choice(input.tz(), TIME_ZONES)  # a fixed list, never free text
        return {"tz": tz, "event_names": bar.events(), **bar.segment()}

    results = db.side_by_side(
        lambda: (bar.dates(), local()),
        {
            "hourly": lambda: (queries.events_by_hour, *bar.dates(), local()),
            "daily": lambda: (queries.events_by_local_day, *bar.dates(), local()),
            "heatmap": lambda: (queries.hour_weekday_heatmap, *bar.dates(), local()),
            "breakdown": lambda: (
                queries.activity_breakdown,
                *bar.dates(),
                checked_choice(input.breakdown(), BREAKDOWN_LABELS),
                local(),
            ),
            "weekday": lambda: (queries.conversion_by_weekday, *bar.dates(), bar.segment()),
            "campaigns": lambda: (queries.campaign_sessions_per_day, *bar.dates(), bar.segment()),
        },
    )
    widget_server(
        "hourly",
        results["hourly"],
        "plot",
        lambda df: plots.time_series_figure(
            df, "local_hour", "event_name", "events", "hour", checked_choice(input.scale(), plots.SCALES)
        ),
        filename="events_per_hour.csv",
    )
    widget_server(
        "daily",
        results["daily"],
        "plot",
        lambda df: plots.bars_by_group(df, "local_date", "event_name", "events"),
        filename="events_per_local_day.csv",
    )
    widget_server("heatmap", results["heatmap"], "plot", plots.heatmap_figure, filename="hour_weekday.csv")
    widget_server(
        "breakdown_card",
        results["breakdown"],
        "both",
        lambda df: plots.bars_by_group(df, "breakdown", "event_name", "events"),
        filename="activity_breakdown.csv",
    )
    widget_server(
        "weekday",
        results["weekday"],
        "both",
        plots.weekday_conversion_figure,
        filename="weekday_conversion.csv",
    )
    widget_server(
        "campaigns",
        results["campaigns"],
        "plot",
        lambda df: plots.lines_by_group(df, "session_date", "campaign", "sessions", "sessions"),
        filename="campaign_sessions.csv",
    )
    return lambda: vs.read_state(session, URL_PARAMS, latest_choices())
