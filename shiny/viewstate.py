"""Every view is a URL: the page, its dates, its filters and its choices live in the query string,
so a reload, a bookmark or a link sent to a colleague opens the same view with the same numbers.

    /clickstream-analytics/?page=funnel&from=2026-03-02&to=2026-03-08&device=mobile&source=google&breakdown=week

One key per value, repeated for a multi-select (`device=mobile&device=tablet`); `from` / `to`
(the dates) are always written, a choice only when it is not its default. The dates and the
device / source filters are shared: every page starts from them, and a change on the page in
view is carried to the other pages (`filters.SharedFilters`). The other keys belong to the page
named by `page` (the Funnel page's builder adds its steps, `funnel_spec.py`).

The query string is hostile input. `parse_view` never raises: an unknown page, key or value is
dropped and the default used (a multi-select keeps its known values; a date range that is not
two dates in order gives the default range). The server writes the URL back after every change
(`url_sync_server`: a custom message, then `history.replaceState`, or `pushState` when the page
changes; the browser's Back button reloads the view of the URL it goes back to)."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import parse_qs, urlencode

from htmltools import HTML, Tag, tags

from shiny import reactive

PAGES = ("overview", "funnel", "products", "activity", "behaviour")
DEFAULT_PAGE = "overview"
MAX_QUERY_CHARS = 16_000  # anything longer is cut before parsing (a browser's URL is shorter)
MAX_VALUES = 200  # values kept per key
MAX_TEXT = 200  # characters kept of one free-text value
EARLIEST, LATEST = date(1970, 1, 1), date(2999, 12, 31)  # dates a URL may name

Query = Mapping[str, Sequence[str]]


def clean_text(value: str, limit: int = MAX_TEXT) -> str:
    """A free text as the warehouse may store it: no control characters, no lone surrogates
    (neither fits in jsonb or text), at most `limit` characters, outer spaces trimmed."""
    kept = "".join(ch for ch in value if unicodedata.category(ch) not in ("Cc", "Cs", "Cn"))
    return kept.strip()[:limit].strip()


def parse_query(text: str) -> dict[str, list[str]]:
    """`a=1&b=2&b=3` (with or without its '?') as {key: [values]}; never raises."""
    if not isinstance(text, str):
        return {}
    text = text[:MAX_QUERY_CHARS].removeprefix("?")
    try:
        raw = parse_qs(text, keep_blank_values=True, errors="replace", max_num_fields=2000)
    except ValueError:  # more fields than that
        return {}
    return {key: values[:MAX_VALUES] for key, values in raw.items()}


# --- one URL key (or a pair of them) <-> one input of a page ------------------------------------


class Param:
    """How one of a page's inputs is kept in the URL. `input_id`: the input, relative to the
    page's module. `c`: the page's choices (`filters.startup_choices`)."""

    keys: tuple[str, ...]
    input_id: str | None

    def default(self, c: dict) -> Any:
        raise NotImplementedError

    def parse(self, query: Query, c: dict) -> Any:
        """The value the URL gives this input, or its default."""
        raise NotImplementedError

    def normalize(self, raw: Any, c: dict) -> Any:
        """The input's current value (as the browser sent it) as this parameter holds it;
        a value outside the input's choices gives the default (the page's widgets refuse it)."""
        raise NotImplementedError

    def encode(self, value: Any, c: dict) -> list[tuple[str, str]]:
        raise NotImplementedError


def _first(query: Query, key: str) -> str | None:
    values = query.get(key) or []
    return values[0] if values and isinstance(values[0], str) else None


@dataclass(frozen=True, eq=False)
class Choice(Param):
    """One of fixed choices (a radio button, a select): `choices` a collection, or a function
    of the page's choices for one that comes from the data (the Behaviour page's first step)."""

    key: str
    input_id: str
    choices: Collection[str] | Callable[[dict], Collection[str]]
    default_value: str

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key,)

    def allowed(self, c: dict) -> Collection[str]:
        return self.choices(c) if callable(self.choices) else self.choices

    def default(self, c: dict) -> str:
        return self.default_value

    def parse(self, query: Query, c: dict) -> str:
        return self.normalize(_first(query, self.key), c)

    def normalize(self, raw: Any, c: dict) -> str:
        return raw if isinstance(raw, str) and raw in self.allowed(c) else self.default_value

    def encode(self, value: str, c: dict) -> list[tuple[str, str]]:
        return [] if value == self.default_value else [(self.key, value)]


@dataclass(frozen=True, eq=False)
class Known(Param):
    """A multi-select whose choices come from the warehouse (`c["kinds"][kind]`): the values of
    the URL that are among them, in the URL's order. An empty key (`events=`) means none chosen
    ("all"); no key, or only unknown values, gives the default."""

    key: str
    input_id: str
    kind: str
    default_fn: Callable[[dict], tuple[str, ...]] | None = None

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key,)

    def default(self, c: dict) -> tuple[str, ...]:
        return tuple(self.default_fn(c)) if self.default_fn else ()

    def _known(self, values: Sequence, c: dict) -> tuple[str, ...] | None:
        known = set(c.get("kinds", {}).get(self.kind, ()))
        chosen = tuple(dict.fromkeys(v for v in values if isinstance(v, str) and v in known))
        if chosen or not any(isinstance(v, str) and v.strip() for v in values):
            return chosen
        return None  # only unknown values

    def parse(self, query: Query, c: dict) -> tuple[str, ...]:
        if self.key not in query:
            return self.default(c)
        chosen = self._known(query[self.key], c)
        return self.default(c) if chosen is None else chosen

    def normalize(self, raw: Any, c: dict) -> tuple[str, ...]:
        if raw is None:
            return ()
        if isinstance(raw, str) or not isinstance(raw, Sequence):
            return self.default(c)
        chosen = self._known(list(raw), c)
        return self.default(c) if chosen is None else chosen

    def encode(self, value: tuple[str, ...], c: dict) -> list[tuple[str, str]]:
        value = tuple(value)
        if set(value) == set(self.default(c)):  # the same selection, in any order
            return []
        return [(self.key, v) for v in value] or [(self.key, "")]


def parse_date(value: Any) -> date | None:
    """A `YYYY-MM-DD` date between 1970 and 2999, or None."""
    if isinstance(value, date):
        return value if EARLIEST <= value <= LATEST else None
    if not isinstance(value, str) or len(value) != 10 or not value[:4].isdigit():
        return None
    if not (value[4] == value[7] == "-" and value[5:7].isdigit() and value[8:].isdigit()):
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None
    return day if EARLIEST <= day <= LATEST else None


@dataclass(frozen=True, eq=False)
class Dates(Param):
    """The date range: `from` and `to`, always written (the default range moves with new data;
    a link must not). A missing or bad end takes the default's; a range ending before it
    starts gives the default range."""

    input_id: str = "filters-dates"
    keys: tuple[str, ...] = ("from", "to")

    def default(self, c: dict) -> tuple[date, date]:
        return (c["start"], c["max_date"])

    def _pair(self, start: Any, end: Any, c: dict) -> tuple[date, date]:
        lo, hi = self.default(c)
        start, end = parse_date(start) or lo, parse_date(end) or hi
        return (start, end) if start <= end else (lo, hi)

    def parse(self, query: Query, c: dict) -> tuple[date, date]:
        return self._pair(_first(query, "from"), _first(query, "to"), c)

    def normalize(self, raw: Any, c: dict) -> tuple[date, date]:
        if not isinstance(raw, list | tuple) or len(raw) != 2:
            return self.default(c)
        return self._pair(raw[0], raw[1], c)

    def encode(self, value: tuple[date, date], c: dict) -> list[tuple[str, str]]:
        return [("from", value[0].isoformat()), ("to", value[1].isoformat())]


def parse_number(value: Any, lo: float, hi: float) -> float | None:
    """A finite number in [lo, hi], or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if len(value) > 40:
            return None
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, int | float) or not math.isfinite(value) or not lo <= value <= hi:
        return None
    return float(value)


@dataclass(frozen=True, eq=False)
class PriceRange(Param):
    """The Products page's price slider: `price_min`, `price_max`, whole numbers within the
    catalogue's price bounds; an end outside them takes the bound."""

    input_id: str = "filters-price"
    keys: tuple[str, ...] = ("price_min", "price_max")

    def default(self, c: dict) -> tuple[int, int]:
        return (int(c["price_min"]), int(c["price_max"]))

    def _pair(self, lo: Any, hi: Any, c: dict) -> tuple[int, int]:
        bottom, top = self.default(c)
        lo, hi = parse_number(lo, bottom, top), parse_number(hi, bottom, top)
        pair = (bottom if lo is None else round(lo), top if hi is None else round(hi))
        return pair if pair[0] <= pair[1] else (bottom, top)

    def parse(self, query: Query, c: dict) -> tuple[int, int]:
        return self._pair(_first(query, "price_min"), _first(query, "price_max"), c)

    def normalize(self, raw: Any, c: dict) -> tuple[int, int]:
        if not isinstance(raw, list | tuple) or len(raw) != 2:
            return self.default(c)
        return self._pair(raw[0], raw[1], c)

    def encode(self, value: tuple[int, int], c: dict) -> list[tuple[str, str]]:
        if tuple(value) == self.default(c):
            return []
        return [("price_min", str(value[0])), ("price_max", str(value[1]))]


# the filters every page that shows them shares (filter-bar inputs `filters-<name>`)
DATES = Dates()
DEVICES = Known("device", "filters-devices", "device_type")
SOURCES = Known("source", "filters-sources", "traffic_source")
SHARED: tuple[Param, ...] = (DATES, DEVICES, SOURCES)


# --- the whole view -----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class View:
    """What a URL asks for: the page in view, and every page's starting state (the shared
    filters from the URL on every page; a page's own inputs from the URL on the page in view,
    their defaults on the others). `query`: the parsed query, for a page's own richer state."""

    page: str
    states: dict[str, dict[Param, Any]]
    query: dict[str, list[str]] = field(default_factory=dict)


def parse_view(text: str, c: dict, pages: Mapping[str, Sequence[Param]]) -> View:
    """The view a query string asks for; every unknown or bad value replaced by its default.
    Never raises (the property tests in tests/shiny/test_view_state.py hold it to that)."""
    query = parse_query(text)
    page = _first(query, "page")
    page = page if page in pages else DEFAULT_PAGE
    states = {
        name: {p: (p.parse(query, c) if (p in SHARED or name == page) else p.default(c)) for p in params}
        for name, params in pages.items()
    }
    return View(page=page, states=states, query=query)


def encode_view(page: str, state: Mapping[Param, Any], c: dict) -> str:
    """The query string of a page's state (`page` first, then each parameter in order)."""
    pairs = [("page", page)]
    for param, value in state.items():
        pairs += param.encode(value, c)
    return urlencode(pairs)


def read_state(session, params: Sequence[Param], c: dict) -> dict[Param, Any]:
    """A page's state from its inputs, each normalised by its parameter. `session`: the page's
    module session; an `input_id` such as `filters-dates` names an input of a nested module."""
    state = {}
    for param in params:
        if param.input_id is None:
            continue
        key = session.ns
        for part in param.input_id.split("-"):
            key = key(part)
        try:
            raw = session.input[key]()
        except Exception:  # noqa: BLE001 - an input the browser has not sent (yet): its default
            raw = None
        state[param] = param.normalize(raw, c)
    return state


# --- keeping the browser's URL in sync ----------------------------------------------------------

URL_SYNC_JS = """
(function () {
  function register() {
    Shiny.addCustomMessageHandler('view-url', function (m) {
      var url = window.location.pathname + (m.query ? '?' + m.query : '');
      if (url === window.location.pathname + window.location.search) { return; }
      if (m.push) { history.pushState({view: true}, '', url); } else { history.replaceState({view: true}, '', url); }
    });
  }
  if (window.Shiny && Shiny.addCustomMessageHandler) { register(); } else { $(register); }
  // Back / Forward: the page is built from its URL, so load the view of the URL gone back to
  window.addEventListener('popstate', function () { window.location.reload(); });
})();
"""


def url_sync_script() -> Tag:
    return tags.script(HTML(URL_SYNC_JS))


def url_sync_server(
    session,
    current_page: Callable[[], str],
    states: Mapping[str, Callable[[], Mapping[Param, Any]]],
    choices: Callable[[], dict],
    ready: Callable[[], bool] = lambda: True,
) -> None:
    """Write the view into the browser's URL whenever the page or one of its inputs changes:
    `states[page]()` reads the page's state (its inputs). `ready()` is False while the page's
    choices are still missing (built while the database was down): the URL it was opened with
    is kept until then."""
    shown = {"page": None}

    @reactive.effect(priority=100)  # before the page's queries run, in the same flush
    async def _write_url():
        page = current_page()
        if not isinstance(page, str) or page not in states:  # a tampered client's page: no URL
            return
        state = states[page]()
        if not ready():
            return
        push = shown["page"] is not None and shown["page"] != page
        shown["page"] = page
        await session.send_custom_message(
            "view-url", {"query": encode_view(page, state, choices()), "push": push}
        )
