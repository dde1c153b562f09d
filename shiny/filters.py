"""The filter bar every page starts with (a module): the shared filters a page asks for
(dates, event types, device, traffic source, category, brand, price), next to inputs the page
owns (a breakdown, a ranking, a time zone). Its server gives the page the chosen values and,
when the page was first built while the database was down, fills in its own choices once the
database is back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from htmltools import Tag
from inputs import checked_choices, checked_dates, text_values
from queries import TIME_SERIES_EVENTS, date_bounds, filter_choices, price_bounds
from querying import SessionDb, fetch

from shiny import Inputs, Outputs, Session, module, reactive, ui

DEFAULT_DAYS = 90
# shared filter -> the kind of choice it offers (queries.filter_choices)
MULTI_FILTERS = {
    "events": ("Event types", "event_name"),
    "devices": ("Device", "device_type"),
    "sources": ("Traffic source", "traffic_source"),
    "categories": ("Category", "product_category"),
    "brands": ("Brand", "product_brand"),
}
# the event types the warehouse holds, as last read for a page (`startup_choices`): a
# selection of event types must be among them
KNOWN_EVENT_NAMES: set[str] = set()


def startup_choices() -> dict:
    """Date bounds and filter choices for a new page (falls back to empty ones if the DB is down)."""
    bounds = fetch(None, date_bounds)
    choices = fetch(None, filter_choices)
    prices = fetch(None, price_bounds)
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
    if kinds.get("event_name"):
        KNOWN_EVENT_NAMES.update(kinds["event_name"])
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


def _default(name: str, choices: list[str]) -> list[str]:
    """Event types start at the time-series events; every other filter at "all"."""
    return [e for e in TIME_SERIES_EVENTS if e in choices] if name == "events" else []


@module.ui
def filter_bar_ui(c: dict, *fields: str | Tag, dates_label: str = "Dates (UTC)"):
    """`fields`, in order: names of shared filters ("dates", "price" or a key of
    `MULTI_FILTERS`) or inputs the page made itself (placed as they are)."""
    inputs = []
    for field in fields:
        if not isinstance(field, str):
            inputs.append(field)
        elif field == "dates":
            inputs.append(ui.input_date_range("dates", dates_label, start=c["start"], end=c["max_date"]))
        elif field == "price":
            lo, hi = c["price_min"], c["price_max"]
            inputs.append(ui.input_slider("price", "Price", min=lo, max=hi, value=(lo, hi)))
        else:
            label, kind = MULTI_FILTERS[field]
            choices = c["kinds"].get(kind, [])
            inputs.append(
                ui.input_selectize(
                    field,
                    label,
                    choices=choices,
                    selected=_default(field, choices),
                    multiple=True,
                    options={"placeholder": "all", "plugins": ["remove_button"]},
                )
            )
    return ui.div(
        ui.layout_columns(*inputs, col_widths={"sm": 12, "md": 6, "lg": 3}),
        class_="filters border-bottom mb-2",
    )


class FilterBar:
    """The chosen values of a page's shared filters (each call reads the input), checked:
    a date range that is not one, or an event type the warehouse does not hold, raises
    `inputs.InvalidInput` before any query runs."""

    def __init__(self, input: Inputs) -> None:
        self._input = input

    def dates(self) -> tuple:
        return checked_dates(self._input.dates())

    def events(self) -> tuple:
        return checked_choices(self._input.events(), KNOWN_EVENT_NAMES)

    def segment(self) -> dict:
        """Devices and traffic sources, as the segmented queries take them."""
        return {"devices": text_values(self._input.devices()), "sources": text_values(self._input.sources())}

    def products(self) -> dict:
        """Categories, brands and the price range, as the product queries take them."""
        try:
            lo, hi = (float(v) for v in self._input.price())
        except (TypeError, ValueError):  # not a pair of numbers (a tampered client): no price filter
            lo = hi = None
        return {
            "categories": text_values(self._input.categories()),
            "brands": text_values(self._input.brands()),
            "price_min": lo,
            "price_max": hi,
        }


@module.server
def filter_bar_server(input: Inputs, output: Outputs, session: Session, fields: Sequence[str], db: SessionDb):
    """`fields`: the shared filters this bar shows (the names given to `filter_bar_ui`)."""
    missing = [db.state.choices_missing]

    @reactive.effect
    @reactive.event(db.epoch, ignore_init=True)
    def _refresh_choices():
        """The page was built while the database was down: fill in the choices now it is back."""
        if not missing[0]:
            return
        c = startup_choices()
        if not c["kinds"]:
            return
        missing[0] = False
        for field in fields:
            if field == "dates":
                ui.update_date_range("dates", start=c["start"], end=c["max_date"])
            elif field == "price":
                lo, hi = c["price_min"], c["price_max"]
                ui.update_slider("price", min=lo, max=hi, value=(lo, hi))
            elif field in MULTI_FILTERS:
                choices = c["kinds"].get(MULTI_FILTERS[field][1], [])
                ui.update_selectize(field, choices=choices, selected=_default(field, choices))

    return FilterBar(input)
