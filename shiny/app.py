"""Clickstream dashboards (Shiny for Python, Core): Overview, Funnel, Products, Activity,
Behaviour, with the data-health bar on every page.

Run locally with `.venv/bin/python shiny/serve.py` (under /clickstream-analytics) or
`.venv/bin/shiny run shiny/app.py`. Reads only the marts in schema `analytics`, as the
read-only role. This file lays out the navbar and wires the pages; each page's UI and server
live side by side in `pages/<page>.py`, its SQL in `queries/`, the pool in `db.py`. The view
(page, dates, filters, choices) is the URL's query string (`viewstate.py`).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import plots  # noqa: E402
import viewstate as vs  # noqa: E402
from filters import SharedFilters, latest_choices, startup_choices  # noqa: E402
from health import health_server, health_ui  # noqa: E402
from pages import activity, behaviour, funnel, overview, products  # noqa: E402
from pages.activity import activity_server, activity_ui  # noqa: E402
from pages.behaviour import behaviour_server, behaviour_ui  # noqa: E402
from pages.funnel import funnel_server, funnel_ui  # noqa: E402
from pages.overview import overview_server, overview_ui  # noqa: E402
from pages.products import products_server, products_ui  # noqa: E402
from queries import date_bounds  # noqa: E402
from querying import SessionDb, fetch  # noqa: E402

from shiny import App, Inputs, Outputs, Session, reactive, ui  # noqa: E402

CSS = """
.health-bar { font-size: .85rem; }
.health-bar .badge { font-size: .8rem; }
.filters .form-group, .filters .shiny-input-container { margin-bottom: .4rem; }
.sql-details pre { font-size: .75rem; max-height: 320px; overflow: auto; }
.shiny-data-grid td { white-space: nowrap; }  /* one line a row: a table's rows all fit its box */
.kpi-row .value-box-value { font-size: clamp(1.1rem, 1.6vw, 1.9rem); white-space: nowrap; }  /* $1,234,567.89 on one line */
"""


# each page's view in the URL
PAGE_PARAMS = {
    "overview": overview.URL_PARAMS,
    "funnel": funnel.URL_PARAMS,
    "products": products.URL_PARAMS,
    "activity": activity.URL_PARAMS,
    "behaviour": behaviour.URL_PARAMS,
}


def app_ui(request):
    """Built per page load: the filters' choices and default dates come from the warehouse, the
    page and every input's starting value from the URL."""
    c = startup_choices()
    view = vs.parse_view(request.url.query, c, PAGE_PARAMS)
    return ui.page_navbar(
        overview_ui("overview", c, view.states["overview"]),
        funnel_ui("funnel", c, view.states["funnel"]),
        products_ui("products", c, view.states["products"]),
        activity_ui("activity", c, view.states["activity"]),
        behaviour_ui("behaviour", c, view.states["behaviour"]),
        title="Clickstream analytics",
        id="page",
        selected=view.page,
        header=ui.div(
            ui.tags.style(CSS),
            plots.plotly_loader(),
            vs.url_sync_script(),
            health_ui("health"),
            class_="container-fluid pt-2",
        ),
        window_title="Clickstream analytics",
        fillable=False,
    )


def server(input: Inputs, output: Outputs, session: Session):
    # the page's filter choices were read just before; if that failed, the filter bars fill
    # them in when the database is back
    db = SessionDb(choices_missing=bool(fetch(None, date_bounds).error))
    with reactive.isolate():
        opened_with = session.clientdata.url_search()  # the URL the page was built from

    def restore(page: str, c: dict) -> dict:
        return vs.parse_view(opened_with, c, PAGE_PARAMS).states[page]

    shared = SharedFilters(current_page=input.page, restore=restore)
    health_server("health", db)
    states = {
        "overview": overview_server("overview", db, shared),
        "funnel": funnel_server("funnel", db, shared),
        "products": products_server("products", db, shared),
        "activity": activity_server("activity", db, shared),
        "behaviour": behaviour_server("behaviour", db, shared),
    }
    vs.url_sync_server(
        session, input.page, states, latest_choices, ready=lambda: not db.state.choices_missing
    )


app = App(app_ui, server, static_assets={"/plotly": plots.PLOTLY_JS_DIR})
