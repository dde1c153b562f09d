"""Clickstream dashboards (Shiny for Python, Core): Overview, Funnel, Products, Activity,
with the data-health bar on every page.

Run locally with `.venv/bin/python shiny/serve.py` (under /clickstream-analytics) or
`.venv/bin/shiny run shiny/app.py`. Reads only the marts in schema `analytics`, as the
read-only role; every query lives in `queries.py`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import psycopg2

from shiny import App, Inputs, Outputs, Session, module, reactive, render, ui

sys.path.insert(0, str(Path(__file__).resolve().parent))

import plots  # noqa: E402
import queries  # noqa: E402
from queries import QueryResult  # noqa: E402

log = logging.getLogger("dashboards.app")

APP_DIR = Path(__file__).resolve().parent
DEFAULT_DAYS = 90
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
RANKINGS = {
    "views": "Views",
    "add_to_carts": "Add-to-carts",
    "purchases": "Purchases (units)",
    "revenue": "Revenue",
    "purchase_rate": "Purchases per view",
}
FUNNEL_BREAKDOWN_LABELS = {"device_type": "Device", "traffic_source": "Traffic source", "week": "Week"}
ACTIVITY_BREAKDOWN_LABELS = {"device_type": "Device", "traffic_source": "Traffic source"}
POLL_SECONDS_UP = 10
POLL_SECONDS_DOWN = 2
HEALTH_REFRESH_SECONDS = 60


# --- running queries safely --------------------------------------------------------------------


class DbState:
    """Per-session memory of a failed query, so the watcher refreshes everything on recovery."""

    def __init__(self) -> None:
        self.failed = False
        self.choices_missing = False


def fetch(state: DbState | None, fn: Callable[..., QueryResult], *args, **kwargs) -> QueryResult:
    """Run one query function on a pooled connection; turn failures into a result with an error."""
    try:
        with queries.POOL.connection() as conn:
            return fn(conn, *args, **kwargs)
    except queries.DatabaseUnavailable as exc:
        if state is not None:
            state.failed = True
        log.warning("database unavailable", extra={"query": fn.__name__, "error": str(exc)[:200]})
        return QueryResult(name=fn.__name__, sql="", error="The database cannot be reached right now.")
    except (ValueError, TypeError, ArithmeticError) as exc:  # an input outside its whitelist / type
        log.warning("rejected input", extra={"query": fn.__name__, "error": str(exc)[:200]})
        return QueryResult(name=fn.__name__, sql="", error="That choice is not available.")
    except psycopg2.errors.UndefinedTable:
        return QueryResult(
            name=fn.__name__, sql="", error="The warehouse has no marts yet: run the loader / dbt build."
        )
    except psycopg2.Error as exc:  # e.g. a statement timeout: not an outage, no automatic retry
        log.exception("query failed", extra={"query": fn.__name__})
        return QueryResult(name=fn.__name__, sql="", error=f"The query failed: {exc.pgerror or exc}".strip())


# A page whose filters feed several independent queries runs them side by side (each on a
# pooled connection of its own): the page waits for the slowest query, not for their sum.
QUERY_THREADS = ThreadPoolExecutor(max_workers=queries.POOL_SIZE, thread_name_prefix="query")


def fetch_together(state: DbState | None, calls: dict[str, tuple]) -> dict[str, QueryResult]:
    """Run `{key: (query function, *args, {kwargs})}` concurrently; results by key, in `fetch`'s
    form (a failed query gives a result with an error, the others are unaffected)."""
    futures = {
        key: QUERY_THREADS.submit(fetch, state, fn, *args, **kwargs)
        for key, (fn, *args, kwargs) in calls.items()
    }
    return {key: future.result() for key, future in futures.items()}


def startup_choices() -> dict:
    """Date bounds and filter choices for a new page (falls back to empty ones if the DB is down)."""
    bounds = fetch(None, queries.date_bounds)
    choices = fetch(None, queries.filter_choices)
    prices = fetch(None, queries.price_bounds)
    today = date.today()
    max_date = min_date = None
    if not bounds.error and not bounds.empty:
        max_date, min_date = bounds.df.at[0, "max_date"], bounds.df.at[0, "min_date"]
    max_date = max_date or today
    min_date = min_date or max_date
    kinds: dict[str, list[str]] = {}
    if not choices.error:
        for kind, value in choices.df.itertuples(index=False):
            if value is not None:
                kinds.setdefault(kind, []).append(value)
    price_min, price_max = 0, 0
    if not prices.error and not prices.empty:
        price_min, price_max = int(prices.df.at[0, "min_price"]), int(prices.df.at[0, "max_price"])
    return {
        "min_date": min_date,
        "max_date": max_date,
        "start": max(min_date, max_date - timedelta(days=DEFAULT_DAYS - 1)),
        "kinds": kinds,
        "price_min": price_min,
        "price_max": max(price_max, price_min + 1),
    }


# --- one widget: a chart and/or table, with its SQL and a CSV download ------------------------


@module.ui
def widget_ui(title: str, kind: str = "plot", note: str | None = None):
    """A card: title, CSV download, the chart and/or the table, and the SQL behind it."""
    parts = []
    if kind in ("plot", "both"):
        parts.append(ui.output_ui("plot"))
    if kind in ("table", "both"):
        parts.append(ui.output_data_frame("table"))
    return ui.card(
        ui.card_header(
            ui.div(
                ui.span(title, class_="fw-semibold"),
                ui.download_button("csv", "CSV", class_="btn btn-sm btn-outline-secondary py-0"),
                class_="d-flex justify-content-between align-items-center",
            )
        ),
        ui.p(note, class_="text-muted small mb-1") if note else None,
        ui.output_ui("message"),
        *parts,
        ui.tags.details(
            ui.tags.summary("Show SQL", class_="small text-muted"),
            ui.output_code("sql", placeholder=False),
            class_="sql-details",
        ),
        full_screen=True,
    )


@module.server
def widget_server(
    input: Inputs,
    output: Outputs,
    session: Session,
    result: Callable[[], QueryResult],
    kind: str = "plot",
    figure: Callable[[pd.DataFrame], object] | None = None,
    to_table: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    styles: Callable[[pd.DataFrame], list] | None = None,
    filename: str = "data.csv",
):
    @render.ui
    def message():
        r = result()
        if r.error:
            return ui.div(r.error, class_="alert alert-warning py-2 mb-1 widget-error")
        if r.empty:
            return ui.div("No data for these filters.", class_="alert alert-light py-2 mb-1 widget-empty")
        return None

    if kind in ("plot", "both"):

        @render.ui
        def plot():
            r = result()
            if r.error or r.empty:
                return None
            fig = figure(r.df)
            return ui.HTML(plots.to_html(fig, div_id=session.ns("figure")))

    if kind in ("table", "both"):

        @render.data_frame
        def table():
            r = result()
            if r.error or r.empty:
                return None
            df = to_table(r.df) if to_table else r.df
            return render.DataGrid(df, width="100%", height="360px", styles=styles(df) if styles else None)

    @render.code
    def sql():
        r = result()
        return r.sql or "-- no query ran"

    @render.download_button(filename=filename)
    def csv():
        yield result().df.to_csv(index=False)


# --- UI --------------------------------------------------------------------------------------


def _multi(id: str, label: str, choices: list[str], selected: list[str] | None = None):
    return ui.input_selectize(
        id,
        label,
        choices=choices,
        selected=selected or [],
        multiple=True,
        options={"placeholder": "all", "plugins": ["remove_button"]},
    )


def _dates(id: str, c: dict):
    return ui.input_date_range(id, "Dates (UTC)", start=c["start"], end=c["max_date"], min=None, max=None)


def _filters(*inputs):
    return ui.div(
        ui.layout_columns(*inputs, col_widths={"sm": 12, "md": 6, "lg": 3}),
        class_="filters border-bottom mb-2",
    )


def overview_page(c: dict):
    k = c["kinds"]
    default_events = [e for e in queries.TIME_SERIES_EVENTS if e in k.get("event_name", [])]
    return ui.nav_panel(
        "Overview",
        _filters(
            _dates("ov_dates", c),
            _multi("ov_events", "Event types", k.get("event_name", []), default_events),
            _multi("ov_devices", "Device", k.get("device_type", [])),
            _multi("ov_sources", "Traffic source", k.get("traffic_source", [])),
        ),
        ui.layout_columns(
            widget_ui("ov_funnel", "User journey funnel (sessions)", kind="both"),
            widget_ui("ov_daily", "Events per day", kind="plot"),
            col_widths={"sm": 12, "lg": 6},
        ),
        widget_ui("ov_products", "Top products", kind="table"),
        value="overview",
    )


def funnel_page(c: dict):
    k = c["kinds"]
    return ui.nav_panel(
        "Funnel",
        _filters(
            _dates("fn_dates", c),
            _multi("fn_devices", "Device", k.get("device_type", [])),
            _multi("fn_sources", "Traffic source", k.get("traffic_source", [])),
            ui.input_radio_buttons("fn_breakdown", "Breakdown", FUNNEL_BREAKDOWN_LABELS, inline=True),
        ),
        ui.output_ui("fn_kpis"),
        ui.tags.details(
            ui.tags.summary("Show SQL of these figures", class_="small text-muted"),
            ui.output_code("fn_kpis_sql", placeholder=False),
            class_="sql-details mb-2",
        ),
        ui.layout_columns(
            widget_ui("fn_steps", "Sessions at each step", kind="both"),
            widget_ui("fn_breakdown_card", "Funnel side by side", kind="both"),
            col_widths={"sm": 12, "lg": 6},
        ),
        value="funnel",
    )


def products_page(c: dict):
    k = c["kinds"]
    return ui.nav_panel(
        "Products",
        _filters(
            _dates("pr_dates", c),
            _multi("pr_categories", "Category", k.get("product_category", [])),
            _multi("pr_brands", "Brand", k.get("product_brand", [])),
            ui.input_slider(
                "pr_price",
                "Price",
                min=c["price_min"],
                max=c["price_max"],
                value=(c["price_min"], c["price_max"]),
            ),
            ui.input_select("pr_rank", "Rank by", RANKINGS),
        ),
        widget_ui(
            "pr_products",
            "Product performance",
            kind="table",
            note="Highlighted: high attention, low conversion (views in the top quartile, purchases per view "
            "in the bottom quartile).",
        ),
        ui.layout_columns(
            widget_ui("pr_by_category", "By category", kind="both"),
            widget_ui("pr_by_brand", "By brand", kind="both"),
            col_widths={"sm": 12, "lg": 6},
        ),
        widget_ui("pr_rare", "Rarely viewed products (promotion candidates)", kind="table"),
        value="products",
    )


def activity_page(c: dict):
    k = c["kinds"]
    default_events = [e for e in queries.TIME_SERIES_EVENTS if e in k.get("event_name", [])]
    return ui.nav_panel(
        "Activity",
        _filters(
            ui.input_date_range("ac_dates", "Dates (local)", start=c["start"], end=c["max_date"]),
            ui.input_select("ac_tz", "Reporting time zone", TIME_ZONES),
            _multi("ac_events", "Event types", k.get("event_name", []), default_events),
            _multi("ac_devices", "Device", k.get("device_type", [])),
            _multi("ac_sources", "Traffic source", k.get("traffic_source", [])),
            ui.input_radio_buttons("ac_breakdown", "Breakdown", ACTIVITY_BREAKDOWN_LABELS, inline=True),
        ),
        ui.layout_columns(
            widget_ui("ac_hourly", "Events per hour", kind="plot"),
            widget_ui("ac_daily", "Events per day", kind="plot"),
            widget_ui("ac_heatmap", "Hour of day × weekday", kind="plot"),
            widget_ui("ac_breakdown_card", "Events by device / traffic source", kind="both"),
            widget_ui("ac_weekday", "Conversion by weekday (UTC session date)", kind="both"),
            widget_ui("ac_campaigns", "Sessions per day by campaign", kind="plot"),
            col_widths={"sm": 12, "lg": 6},
        ),
        value="activity",
    )


CSS = """
.health-bar { font-size: .85rem; }
.health-bar .badge { font-size: .8rem; }
.filters .form-group, .filters .shiny-input-container { margin-bottom: .4rem; }
.sql-details pre { font-size: .75rem; max-height: 320px; overflow: auto; }
"""


def app_ui(request):
    c = startup_choices()
    return ui.page_navbar(
        overview_page(c),
        funnel_page(c),
        products_page(c),
        activity_page(c),
        title="Clickstream analytics",
        id="page",
        header=ui.div(
            ui.tags.style(CSS),
            plots.plotly_loader(),
            ui.output_ui("db_banner"),
            ui.output_ui("health"),
            class_="container-fluid pt-2",
        ),
        window_title="Clickstream analytics",
        fillable=False,
    )


# --- server ----------------------------------------------------------------------------------


def _steps_table(df: pd.DataFrame) -> pd.DataFrame:
    out = df.drop(columns=["step_order"]).copy()
    out["step"] = [plots.STEP_LABELS.get(s, s) for s in out["step"]]
    return out


def _flag_styles(df: pd.DataFrame) -> list:
    rows = [i for i, flagged in enumerate(df["is_high_attention_low_conversion"]) if flagged]
    if not rows:
        return []
    return [{"rows": rows, "class": "flagged-row", "style": {"background-color": "#fde0c5"}}]


def _minutes(seconds) -> str:
    if seconds is None or pd.isna(seconds):
        return "–"
    return f"{float(seconds) / 60:.1f} min"


def server(input: Inputs, output: Outputs, session: Session):
    state = DbState()
    # the page's filter choices were read just before; if that failed, fill them in on recovery
    state.choices_missing = bool(fetch(None, queries.date_bounds).error)
    db_up = reactive.value(True)
    epoch = reactive.value(0)

    @reactive.effect
    def _watch_database():
        """Ping the database; when it comes back after a failure, refresh every widget."""
        with reactive.isolate():
            was_up = db_up.get()
        reactive.invalidate_later(POLL_SECONDS_UP if was_up and not state.failed else POLL_SECONDS_DOWN)
        try:
            with queries.POOL.connection() as conn:
                ok = queries.ping(conn)
        except (queries.DatabaseUnavailable, psycopg2.Error):
            ok = False
        if ok and (state.failed or not was_up):
            state.failed = False
            with reactive.isolate():
                epoch.set(epoch.get() + 1)
                if state.choices_missing:
                    _refresh_choices()
        db_up.set(ok)

    def _refresh_choices():
        """The page was built while the database was down: fill in the filters' choices now."""
        c = startup_choices()
        if not c["kinds"]:
            return
        state.choices_missing = False
        k = c["kinds"]
        for prefix in ("ov", "fn", "pr", "ac"):
            ui.update_date_range(f"{prefix}_dates", start=c["start"], end=c["max_date"])
        for id, kind in [
            ("ov_events", "event_name"),
            ("ac_events", "event_name"),
            ("ov_devices", "device_type"),
            ("fn_devices", "device_type"),
            ("ac_devices", "device_type"),
            ("ov_sources", "traffic_source"),
            ("fn_sources", "traffic_source"),
            ("ac_sources", "traffic_source"),
            ("pr_categories", "product_category"),
            ("pr_brands", "product_brand"),
        ]:
            default = queries.TIME_SERIES_EVENTS if kind == "event_name" else []
            choices = k.get(kind, [])
            ui.update_selectize(id, choices=choices, selected=[v for v in default if v in choices])
        ui.update_slider(
            "pr_price", min=c["price_min"], max=c["price_max"], value=(c["price_min"], c["price_max"])
        )

    def q(fn, *args, **kwargs) -> QueryResult:
        epoch.get()
        return fetch(state, fn, *args, **kwargs)

    def side_by_side(shared: Callable[[], object], calls: dict[str, Callable[[], tuple]]) -> dict:
        """One reactive result per widget of a page, its queries run side by side.

        `calls[key]()` reads the inputs of one widget's query and returns it as
        `(query function, *args, {kwargs})`; `shared()` reads the inputs all of them depend on
        (dates, filters). A change of those runs every query of the page at once
        (`fetch_together`): the page waits for its slowest query, not for their sum. A change
        of an input only one widget reads (a ranking, a breakdown) re-runs only that widget's
        query, on its own."""

        @reactive.calc
        def batch() -> tuple[dict, dict]:
            epoch.get()
            shared()
            with reactive.isolate():
                planned = {key: call() for key, call in calls.items()}
            return planned, fetch_together(state, planned)

        def widget(key: str) -> Callable[[], QueryResult]:
            @reactive.calc
            def result() -> QueryResult:
                planned, results = batch()
                call = calls[key]()
                if call == planned[key]:
                    return results[key]
                fn, *args, kwargs = call
                return q(fn, *args, **kwargs)

            return result

        return {key: widget(key) for key in calls}

    @render.ui
    def db_banner():
        if db_up.get():
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
        return q(queries.data_health)

    @render.ui
    def health():
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

        def hhmm(v):
            return "never" if v is None or pd.isna(v) else pd.Timestamp(v).strftime("%Y-%m-%d %H:%M UTC")

        behind = None
        if bool(row.get("marts_behind", False)):
            behind = ui.span(
                f"Marts behind: built {hhmm(row['marts_built_at'])}, raw loaded {hhmm(row['raw_loaded_at'])}",
                class_="badge bg-warning text-dark me-3 health-marts-behind",
                title="Events were loaded after the last successful dbt build started; the next ETL run builds them.",
            )
        return ui.div(
            ui.span(f"Data {status}", class_=f"badge bg-{colour} me-3 health-status"),
            behind,
            item("Last load", last_text, "health-last-load"),
            item("Lag", lag_text, "health-lag"),
            item("Events loaded (24 h)", count(row["events_last_24h"]), "health-events-24h"),
            item("Rejected lines", count(row["rejected_lines"]), "health-rejected"),
            item("Quarantined events", count(row["quarantined_events"]), "health-quarantined"),
            ui.tags.details(
                ui.tags.summary("SQL", class_="d-inline small text-muted"),
                ui.tags.pre(r.sql, class_="small"),
                class_="d-inline",
            ),
            class_="health-bar d-flex flex-wrap align-items-center border rounded px-2 py-1 mb-2",
        )

    # -- overview
    def ov_filters() -> dict:
        return {"devices": input.ov_devices(), "sources": input.ov_sources()}

    ov = side_by_side(
        lambda: (input.ov_dates(), ov_filters()),
        {
            "funnel": lambda: (queries.funnel_steps, *input.ov_dates(), ov_filters()),
            "daily": lambda: (queries.events_per_day, *input.ov_dates(), input.ov_events(), ov_filters()),
            "products": lambda: (
                queries.product_performance,
                *input.ov_dates(),
                "purchases",
                {**ov_filters(), "limit": 20},
            ),
        },
    )
    ov_funnel, ov_daily, ov_products = ov["funnel"], ov["daily"], ov["products"]

    widget_server("ov_funnel", ov_funnel, "both", plots.funnel_figure, _steps_table, filename="funnel.csv")
    widget_server(
        "ov_daily",
        ov_daily,
        "plot",
        lambda df: plots.lines_by_group(df, "event_date", "event_name", "events"),
        filename="events_per_day.csv",
    )
    widget_server(
        "ov_products",
        ov_products,
        "table",
        to_table=lambda df: df.drop(columns=["is_high_attention_low_conversion"]),
        filename="top_products.csv",
    )

    # -- funnel
    def fn_filters() -> dict:
        return {"devices": input.fn_devices(), "sources": input.fn_sources()}

    fn = side_by_side(
        lambda: (input.fn_dates(), fn_filters()),
        {
            "steps": lambda: (queries.funnel_steps, *input.fn_dates(), fn_filters()),
            "breakdown": lambda: (
                queries.funnel_breakdown,
                *input.fn_dates(),
                input.fn_breakdown(),
                fn_filters(),
            ),
            "time": lambda: (queries.funnel_time_to_convert, *input.fn_dates(), fn_filters()),
        },
    )
    fn_steps, fn_breakdown, fn_time = fn["steps"], fn["breakdown"], fn["time"]

    @render.ui
    def fn_kpis():
        steps, t = fn_steps(), fn_time()
        if steps.error or t.error:
            return ui.div(steps.error or t.error, class_="alert alert-warning py-2")
        if steps.empty or int(steps.df["sessions"].iloc[0]) == 0:
            return ui.div("No sessions for these filters.", class_="alert alert-light py-2 widget-empty")
        df = steps.df
        drops = df.dropna(subset=["drop_off_pct"])
        worst = drops.loc[drops["drop_off_pct"].idxmax()] if not drops.empty else None
        row = t.df.iloc[0]
        worst_text = "–"
        if worst is not None:
            prev = df.loc[df["step_order"] == worst["step_order"] - 1, "step"].iloc[0]
            worst_text = f"{plots.STEP_LABELS[prev]} → {plots.STEP_LABELS[worst['step']]}: −{worst['drop_off_pct']:.1f}%"
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
    def fn_kpis_sql():
        return "\n\n".join(r.sql or "-- no query ran" for r in (fn_steps(), fn_time()))

    widget_server(
        "fn_steps", fn_steps, "both", plots.funnel_figure, _steps_table, filename="funnel_steps.csv"
    )
    widget_server(
        "fn_breakdown_card",
        fn_breakdown,
        "both",
        plots.funnel_breakdown_figure,
        filename="funnel_breakdown.csv",
    )

    # -- products
    def product_filters() -> dict:
        try:
            lo, hi = (float(v) for v in input.pr_price())
        except (TypeError, ValueError):  # not a pair of numbers (a tampered client): no price filter
            lo = hi = None
        return {
            "categories": input.pr_categories(),
            "brands": input.pr_brands(),
            "price_min": lo,
            "price_max": hi,
        }

    pr = side_by_side(
        lambda: (input.pr_dates(), product_filters()),
        {
            "products": lambda: (
                queries.product_performance,
                *input.pr_dates(),
                input.pr_rank(),
                product_filters(),
            ),
            "category": lambda: (
                queries.product_rollup,
                *input.pr_dates(),
                "product_category",
                product_filters(),
            ),
            "brand": lambda: (queries.product_rollup, *input.pr_dates(), "product_brand", product_filters()),
            "rare": lambda: (queries.rarely_viewed_products, *input.pr_dates(), product_filters()),
        },
    )
    pr_products, pr_by_category, pr_by_brand, pr_rare = (
        pr["products"],
        pr["category"],
        pr["brand"],
        pr["rare"],
    )

    widget_server("pr_products", pr_products, "table", styles=_flag_styles, filename="products.csv")
    widget_server(
        "pr_by_category",
        pr_by_category,
        "both",
        lambda df: plots.rollup_figure(df, "product_category"),
        filename="categories.csv",
    )
    widget_server(
        "pr_by_brand",
        pr_by_brand,
        "both",
        lambda df: plots.rollup_figure(df, "product_brand"),
        filename="brands.csv",
    )
    widget_server("pr_rare", pr_rare, "table", filename="rarely_viewed.csv")

    # -- activity
    def ac_segments() -> dict:
        return {"devices": input.ac_devices(), "sources": input.ac_sources()}

    def ac_filters() -> dict:
        tz = input.ac_tz() if input.ac_tz() in TIME_ZONES else "UTC"  # a fixed list, never free text
        return {"tz": tz, "event_names": input.ac_events(), **ac_segments()}

    ac = side_by_side(
        lambda: (input.ac_dates(), ac_filters()),
        {
            "hourly": lambda: (queries.events_by_hour, *input.ac_dates(), ac_filters()),
            "daily": lambda: (queries.events_by_local_day, *input.ac_dates(), ac_filters()),
            "heatmap": lambda: (queries.hour_weekday_heatmap, *input.ac_dates(), ac_filters()),
            "breakdown": lambda: (
                queries.activity_breakdown,
                *input.ac_dates(),
                input.ac_breakdown(),
                ac_filters(),
            ),
            "weekday": lambda: (queries.conversion_by_weekday, *input.ac_dates(), ac_segments()),
            "campaigns": lambda: (queries.campaign_sessions_per_day, *input.ac_dates(), ac_segments()),
        },
    )
    ac_hourly, ac_daily, ac_heatmap = ac["hourly"], ac["daily"], ac["heatmap"]
    ac_breakdown, ac_weekday, ac_campaigns = ac["breakdown"], ac["weekday"], ac["campaigns"]

    widget_server(
        "ac_hourly",
        ac_hourly,
        "plot",
        lambda df: plots.lines_by_group(df, "local_hour", "event_name", "events"),
        filename="events_per_hour.csv",
    )
    widget_server(
        "ac_daily",
        ac_daily,
        "plot",
        lambda df: plots.bars_by_group(df, "local_date", "event_name", "events"),
        filename="events_per_local_day.csv",
    )
    widget_server("ac_heatmap", ac_heatmap, "plot", plots.heatmap_figure, filename="hour_weekday.csv")
    widget_server(
        "ac_breakdown_card",
        ac_breakdown,
        "both",
        lambda df: plots.bars_by_group(df, "breakdown", "event_name", "events"),
        filename="activity_breakdown.csv",
    )
    widget_server(
        "ac_weekday", ac_weekday, "both", plots.weekday_conversion_figure, filename="weekday_conversion.csv"
    )
    widget_server(
        "ac_campaigns",
        ac_campaigns,
        "plot",
        lambda df: plots.lines_by_group(df, "session_date", "campaign", "sessions", "sessions"),
        filename="campaign_sessions.csv",
    )


app = App(app_ui, server, static_assets={"/plotly": plots.PLOTLY_JS_DIR})
