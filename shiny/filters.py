"""The filter bar every page starts with (a module): the shared filters a page asks for
(dates, event types, device, traffic source, category, brand, price), next to inputs the page
owns (a breakdown, a ranking, a time zone). Its inputs start at the view the URL asks for
(`viewstate.py`). Its server gives the page the chosen values, carries the dates, devices and
sources across pages (`SharedFilters`) and, when the page was first built while the database
was down, fills in its own choices once the database is back."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, timedelta
from typing import Any

from htmltools import Tag
from inputs import InvalidInput, checked_choices, checked_dates, text_values
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
# the filters carried from page to page
SHARED_FIELDS = ("dates", "devices", "sources")
_latest: list[dict] = []  # the choices last read for a page (`latest_choices`)


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
    c = {
        "min_date": min_date,
        "max_date": max_date,
        "start": max(min_date, max_date - timedelta(days=DEFAULT_DAYS - 1)),
        "kinds": kinds,
        "price_min": price_min,
        "price_max": max(price_max, price_min + 1),
    }
    if kinds:
        _latest[:] = [c]
    return c


def latest_choices() -> dict:
    """The choices last read for a page (what a session's URL is parsed and written with);
    before any could be read, none (never a query here: it is read on every change)."""
    if _latest:
        return _latest[0]
    today = date.today()
    return {
        "min_date": today,
        "max_date": today,
        "start": today - timedelta(days=DEFAULT_DAYS - 1),
        "kinds": {},
        "price_min": 0,
        "price_max": 1,
    }


def _default(name: str, choices: list[str]) -> list[str]:
    """Event types start at the time-series events; every other filter at "all"."""
    return [e for e in TIME_SERIES_EVENTS if e in choices] if name == "events" else []


def default_events(c: dict) -> tuple[str, ...]:
    """The event types a page starts with (those of the time series the warehouse holds)."""
    return tuple(_default("events", c["kinds"].get("event_name", [])))


def _initial(state: dict | None) -> dict[str, Any]:
    """The filter bar's starting values by field, from a page's state (`viewstate.View`)."""
    return {
        p.input_id.removeprefix("filters-"): v
        for p, v in (state or {}).items()
        if p.input_id and p.input_id.startswith("filters-")
    }


@module.ui
def filter_bar_ui(c: dict, *fields: str | Tag, dates_label: str = "Dates (UTC)", state: dict | None = None):
    """`fields`, in order: names of shared filters ("dates", "price" or a key of
    `MULTI_FILTERS`) or inputs the page made itself (placed as they are). `state`: the page's
    starting state (`viewstate.View.states[page]`); a filter it does not name starts at its
    default."""
    initial = _initial(state)
    inputs = []
    for field in fields:
        if not isinstance(field, str):
            inputs.append(field)
        elif field == "dates":
            start, end = initial.get("dates", (c["start"], c["max_date"]))
            inputs.append(ui.input_date_range("dates", dates_label, start=start, end=end))
        elif field == "price":
            lo, hi = c["price_min"], c["price_max"]
            inputs.append(
                ui.input_slider("price", "Price", min=lo, max=hi, value=initial.get("price", (lo, hi)))
            )
        else:
            label, kind = MULTI_FILTERS[field]
            choices = c["kinds"].get(kind, [])
            inputs.append(
                ui.input_selectize(
                    field,
                    label,
                    choices=choices,
                    selected=list(initial.get(field, _default(field, choices))),
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

    def __init__(self, input: Inputs, session: Session | None = None) -> None:
        self._input = input
        self._session = session

    def apply(self, dates: tuple | None = None, devices=None, sources=None) -> None:
        """Set the bar's dates, devices and sources (a saved funnel opened on the page)."""
        if dates is not None:
            ui.update_date_range("dates", start=dates[0], end=dates[1], session=self._session)
        if devices is not None:
            ui.update_selectize("devices", selected=list(devices), session=self._session)
        if sources is not None:
            ui.update_selectize("sources", selected=list(sources), session=self._session)

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


class SharedFilters:
    """One session's dates, devices and sources, carried across pages: a change made on the
    page in view is copied into every other page's filter bar (so choosing dates on Overview,
    then opening Funnel, shows the same dates). `current_page()`: the page in view.
    `restore(page, c)`: the page's state as the URL the session was opened with asks for it,
    read with the choices `c` (used when the page was built while the database was down)."""

    def __init__(
        self,
        current_page: Callable[[], str],
        restore: Callable[[str, dict], dict] = lambda page, c: {},
    ) -> None:
        self.current_page = current_page
        self.restore = restore
        self.values = {name: reactive.value(None) for name in SHARED_FIELDS}


def _shared_value(field: str, raw) -> tuple | None:
    """A shared filter's value as carried to other pages (None: not a valid value)."""
    try:
        return checked_dates(raw) if field == "dates" else text_values(raw)
    except InvalidInput:
        return None


def _carry(input: Inputs, field: str, page: str, shared: SharedFilters) -> None:
    """Publish the field's changes made on this page; follow those made on other pages."""
    value = shared.values[field]

    @reactive.effect
    @reactive.event(input[field], ignore_init=True)
    def _publish():
        if shared.current_page() != page:  # an update this bar received, not the user's change
            return
        new = _shared_value(field, input[field]())
        if new is not None and new != value.get():
            value.set(new)

    @reactive.effect
    @reactive.event(value, ignore_init=True)
    def _follow():
        new = value.get()
        with reactive.isolate():
            if new is None or _shared_value(field, input[field]()) == new:
                return
        if field == "dates":
            ui.update_date_range("dates", start=new[0], end=new[1])
        else:
            ui.update_selectize(field, selected=list(new))


@module.server
def filter_bar_server(
    input: Inputs,
    output: Outputs,
    session: Session,
    fields: Sequence[str],
    db: SessionDb,
    shared: SharedFilters | None = None,
    page: str = "",
):
    """`fields`: the shared filters this bar shows (the names given to `filter_bar_ui`);
    `shared`, `page`: the session's shared filters and the page this bar is on."""
    missing = [db.state.choices_missing]
    if shared is not None:
        for field in SHARED_FIELDS:
            if field in fields:
                _carry(input, field, page, shared)

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
        db.state.choices_missing = False
        initial = _initial(shared.restore(page, c) if shared else {})
        for field in fields:
            if field == "dates":
                start, end = initial.get("dates", (c["start"], c["max_date"]))
                ui.update_date_range("dates", start=start, end=end)
            elif field == "price":
                lo, hi = c["price_min"], c["price_max"]
                ui.update_slider("price", min=lo, max=hi, value=initial.get("price", (lo, hi)))
            elif field in MULTI_FILTERS:
                choices = c["kinds"].get(MULTI_FILTERS[field][1], [])
                selected = initial.get(field, _default(field, choices))
                ui.update_selectize(field, choices=choices, selected=list(selected))

    return FilterBar(input, session)
