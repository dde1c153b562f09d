"""The top of every page (a module): the *Database unreachable* banner and the data-health
bar (freshness, last load, lag, events loaded, rejected lines, quarantined events, the oldest
date the marts hold, whether the marts are behind the raw data, the newest daily full check), refreshed every minute, with the
SQL behind it."""

from __future__ import annotations

import pandas as pd
from queries import QueryResult, data_health, full_check
from querying import SessionDb

from shiny import Inputs, Outputs, Session, module, reactive, render, ui

HEALTH_REFRESH_SECONDS = 60


@module.ui
def health_ui():
    return ui.TagList(ui.output_ui("banner"), ui.output_ui("bar"))


@module.server
def health_server(input: Inputs, output: Outputs, session: Session, db: SessionDb):
    @render.ui
    def banner():
        if db.up.get():
            return None
        return ui.div(
            ui.strong("Database unreachable. "),
            "The numbers below may be missing or stale; the dashboard reconnects by itself.",
            class_="alert alert-danger py-2 mb-2 db-banner",
            role="alert",
        )

    @reactive.calc
    def health_result() -> QueryResult:
        reactive.invalidate_later(HEALTH_REFRESH_SECONDS)
        return db.q(data_health)

    @reactive.calc
    def check_result() -> QueryResult:
        reactive.invalidate_later(HEALTH_REFRESH_SECONDS)
        return db.q(full_check)

    def check_badge():
        r = check_result()
        if r.error or r.empty:
            return ui.span(
                "Full check: not run yet",
                class_="badge bg-secondary me-3 health-full-check",
                title="python -m loader check (daily): every data test over whole tables",
            )
        row = r.df.iloc[0]
        at = pd.Timestamp(row["started_at"]).strftime("%Y-%m-%d %H:%M UTC")
        if row["status"] == "passed":
            return ui.span(
                f"Full check passed {at}",
                class_="badge bg-success me-3 health-full-check",
                title=f"{int(row['tests'])} data tests over whole tables",
            )
        failures = int(row["failures"] or 0)
        return ui.span(
            f"Full check failed {at}: {failures} test{'s' if failures != 1 else ''}",
            class_="badge bg-danger me-3 health-full-check",
            title="python -m loader check; the 15-minute cycles go on. dbt test lists the failing tests.",
        )

    @render.ui
    def bar():
        r = health_result()
        if r.error or r.empty:
            return ui.div(r.error or "No load information.", class_="health-bar text-muted mb-2")
        row = r.df.iloc[0]
        status = row["freshness"]
        colour = {"fresh": "success", "warn": "warning", "error": "danger"}.get(status, "secondary")
        last = row["last_load_at"]
        last_text = (
            "never" if last is None or pd.isna(last) else pd.Timestamp(last).strftime("%Y-%m-%d %H:%M UTC")
        )
        lag = row["lag_minutes"]
        lag_text = "–" if lag is None or pd.isna(lag) else f"{int(lag)} min"

        def item(label, value, cls):
            return ui.span(label + ": ", ui.strong(value, class_=cls), class_="me-3")

        def count(v):
            return "n/a" if v is None or pd.isna(v) else f"{int(v):,}"

        def day(v):
            return "–" if v is None or pd.isna(v) else pd.Timestamp(v).strftime("%Y-%m-%d")

        def hhmm(v):
            return "never" if v is None or pd.isna(v) else pd.Timestamp(v).strftime("%Y-%m-%d %H:%M UTC")

        behind = None
        if bool(row.get("marts_behind", False)):
            behind = ui.span(
                f"Marts behind: built {hhmm(row['marts_built_at'])}, raw loaded {hhmm(row['raw_loaded_at'])}",
                class_="badge bg-warning text-dark me-3 health-marts-behind",
                title="Events were loaded after the last successful dbt build started; the next ETL run builds them.",
            )
        build_failed = None
        if bool(row.get("last_build_failed", False)):
            error = row.get("last_build_error")
            build_failed = ui.span(
                f"Last build failed {hhmm(row['last_build_at'])}",
                class_="badge bg-danger me-3 health-build-failed",
                title=(error if isinstance(error, str) and error else "dbt build failed")
                + " (the next ETL run builds again)",
            )
        return ui.div(
            ui.span(f"Data {status}", class_=f"badge bg-{colour} me-3 health-status"),
            build_failed,
            behind,
            check_badge(),
            item("Last load", last_text, "health-last-load"),
            item("Lag", lag_text, "health-lag"),
            item("Events loaded (24 h)", count(row["events_last_24h"]), "health-events-24h"),
            item("Rejected lines", count(row["rejected_lines"]), "health-rejected"),
            item("Quarantined events", count(row["quarantined_events"]), "health-quarantined"),
            item("Data since", day(row.get("first_date")), "health-first-date"),
            # retention (RETENTION_MONTHS) dropped older events; the aggregates keep their figures
            item("Events kept since", day(row["events_kept_since"]), "health-events-kept-since")
            if row.get("events_kept_since") is not None
            else None,
            ui.tags.details(
                ui.tags.summary("SQL", class_="d-inline small text-muted"),
                ui.tags.pre(r.sql, class_="small"),
                class_="d-inline",
            ),
            class_="health-bar d-flex flex-wrap align-items-center border rounded px-2 py-1 mb-2",
        )
