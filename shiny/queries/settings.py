"""The dashboards' settings, read from the dbt project: `analytics.dashboard_settings` holds
the funnel's steps (dbt var `funnel_steps`), their labels (var `funnel_step_labels`) and the
source freshness thresholds (vars `freshness_warn_after_hours` / `freshness_error_after_hours`).

Read once per process, the first time a query needs them (so the app starts while the database
is down); a change of those vars shows after `dbt build` and a restart of the app.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from .base import QueryResult, run

_STEP_NAME = re.compile(r"[a-z][a-z0-9_]*")  # a step names columns of agg_funnel_daily


@dataclass(frozen=True)
class Settings:
    steps: tuple[str, ...]
    labels: dict[str, str]
    freshness_warn_minutes: int
    freshness_error_minutes: int


_lock = threading.Lock()
_settings: Settings | None = None


def dashboard_settings(conn) -> QueryResult:
    """One row per funnel step, in order, with the freshness thresholds on every row."""
    return run(
        conn,
        "dashboard_settings",
        """
        select step_order, step_name, step_label, freshness_warn_after_hours, freshness_error_after_hours
        from analytics.dashboard_settings
        order by step_order
        """,
        {},
    )


def settings(conn) -> Settings:
    """The settings, read on first use with this connection and kept for the process."""
    global _settings
    if _settings is None:
        df = dashboard_settings(conn).df
        if df.empty:
            raise LookupError("analytics.dashboard_settings is empty")
        steps = tuple(df["step_name"])
        bad = [s for s in steps if not _STEP_NAME.fullmatch(s)]
        if bad:
            raise ValueError(f"funnel step names must be lower-case identifiers: {bad}")
        first = df.iloc[0]
        with _lock:
            _settings = Settings(
                steps=steps,
                labels=dict(zip(df["step_name"], df["step_label"], strict=True)),
                freshness_warn_minutes=int(first["freshness_warn_after_hours"] * 60),
                freshness_error_minutes=int(first["freshness_error_after_hours"] * 60),
            )
    return _settings


def step_labels() -> dict[str, str]:
    """Labels of the funnel steps once the settings were read (before that: none; a chart of
    funnel rows is only drawn after a funnel query, which reads them)."""
    return dict(_settings.labels) if _settings else {}
