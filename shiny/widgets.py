"""The card every chart and table sits in (a module): title, CSV download, the chart and/or
the table, a message instead of them when the query failed or found nothing, and *Show SQL*
with the exact statement that ran."""

from __future__ import annotations

from collections.abc import Callable

import formatting as fmt
import pandas as pd
import plots
from inputs import InvalidInput
from queries import QueryResult

from shiny import Inputs, Outputs, Session, module, render, ui

NO_DATA = "No data for these filters."
TABLE_ROWS_SHOWN = 12  # a table shows at least this many rows before it scrolls


def table_height(rows: int) -> str | None:
    """No inner scrolling up to `TABLE_ROWS_SHOWN` rows (the grid grows to fit); a longer table
    scrolls inside a box tall enough for them."""
    return None if rows <= TABLE_ROWS_SHOWN else f"{48 + 37 * TABLE_ROWS_SHOWN}px"


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
    empty: Callable[[], str] | None = None,
):
    """`empty()`: what the card says when the query found nothing (default: "No data for these
    filters.")."""

    @render.ui
    def message():
        r = result()
        if r.error:
            return ui.div(r.error, class_="alert alert-warning py-2 mb-1 widget-error")
        if r.empty:
            said = empty() if empty else NO_DATA
            return ui.div(said, class_="alert alert-light py-2 mb-1 widget-empty")
        return None

    if kind in ("plot", "both"):

        @render.ui
        def plot():
            r = result()
            if r.error or r.empty:
                return None
            try:
                fig = figure(r.df)
            except InvalidInput as exc:  # a display option (a scale) outside its choices
                return ui.div(str(exc), class_="alert alert-warning py-2 mb-1 widget-error")
            return ui.HTML(plots.to_html(fig, div_id=session.ns("figure")))

    if kind in ("table", "both"):

        @render.data_frame
        def table():
            r = result()
            if r.error or r.empty:
                return None
            df = to_table(r.df) if to_table else r.df
            shown, number_columns = fmt.table(df)
            cell_styles = (styles(df) if styles else []) + [
                {"cols": number_columns, "style": {"text-align": "right"}, "class": "number-cell"}
            ]
            return render.DataGrid(shown, width="100%", height=table_height(len(df)), styles=cell_styles)

    @render.code
    def sql():
        r = result()
        return r.sql or "-- no query ran"

    @render.download_button(filename=filename)
    def csv():
        yield result().df.to_csv(index=False)
