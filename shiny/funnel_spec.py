"""The funnel builder's question, as the warehouse's `analytics.funnel(spec jsonb)` takes it
(docs/warehouse.md, "Ad-hoc funnels"), and as the URL keeps it.

A `Builder` holds what the person chose: 1–10 steps (an event, optional filters), the window,
sessions or users, ordered or any order, a breakdown. `spec()` adds the page's dates, devices
and sources and gives the function's JSON. Anything read from outside (a URL, a saved funnel
written by anyone with psql) goes through `checked_step` / `checked_builder`: an unknown event
drops its step, an unknown filter value drops that filter, a bad window or choice gives the
default, so a view never breaks. In the URL:

    step1=product_view&step1_category=electronics&step2=add_to_cart&step3=purchase
    &window=10+minutes&count=users&order=any&by=brand
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date
from typing import Any

import viewstate as vs

MAX_STEPS = 10
WINDOW_PRESETS = ("10 minutes", "30 minutes", "1 hour", "1 day", "7 days", "14 days")
DEFAULT_WINDOW = "14 days"
COUNTS = {"sessions": "Sessions", "users": "Users"}
ORDERS = {"ordered": "In this order", "any": "In any order"}
BREAKDOWNS = {
    "": "None",
    "device": "Device",
    "source": "Traffic source",
    "category": "Category (of step 1)",
    "brand": "Brand (of step 1)",
}
# a step's filters, in the order the builder shows them, with their labels
FILTER_LABELS = {
    "category": "Category (or a parent category)",
    "brand": "Brand",
    "product_id": "Product id",
    "price_min": "Price from",
    "price_max": "Price up to",
    "page_path": "Page path starts with",
    "search": "Search text contains",
}
TEXT_LIMITS = {"product_id": 100, "page_path": 200, "search": 200}
PRICE_LIMIT = 1e9
WINDOW_LIMIT = 40
_UNIT = r"(?:microseconds?|milliseconds?|seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|mons?|years?)"
# a window the URL may carry: "10 minutes", "1 day 12 hours", "1 day 12:00", "90 min"
WINDOW_TEXT = re.compile(
    rf"\s*(?:\d{{1,6}}(?:\.\d{{1,6}})?\s*{_UNIT}\s*)*(?:\d{{1,4}}:\d{{2}}(?::\d{{2}})?)?\s*", re.I
)


@dataclass(frozen=True)
class Step:
    """One step: an event and its optional filters (None: not filtered)."""

    event: str
    category: str | None = None
    brand: str | None = None
    product_id: str | None = None
    price_min: float | None = None
    price_max: float | None = None
    page_path: str | None = None
    search: str | None = None

    def filters(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)[1:] if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class Builder:
    """What the builder holds; no steps: the page shows the standard funnel."""

    steps: tuple[Step, ...] = ()
    window: str = DEFAULT_WINDOW
    count: str = "sessions"
    order: str = "ordered"
    breakdown: str = ""


def plain_number(value: float) -> int | float:
    """50.0 as 50 (in the spec, the URL and the inputs)."""
    return int(value) if float(value).is_integer() else value


def spec(
    builder: Builder, start: date, end: date, devices: Sequence[str] = (), sources: Sequence[str] = ()
) -> dict:
    """The spec of `analytics.funnel` for the builder's funnel over [start, end] (UTC dates of
    step 1) and the page's devices and sources (none: all)."""
    steps = []
    for step in builder.steps:
        item: dict[str, Any] = {"event": step.event}
        for key, value in step.filters().items():
            item[key] = plain_number(value) if key in ("price_min", "price_max") else value
        steps.append(item)
    out: dict[str, Any] = {
        "steps": steps,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "window": builder.window,
        "count": builder.count,
        "order": builder.order,
    }
    if devices:
        out["device"] = list(devices)
    if sources:
        out["source"] = list(sources)
    if builder.breakdown:
        out["breakdown"] = builder.breakdown
    return out


def spec_json(spec: Mapping) -> str:
    """The spec as the function's argument (and as *Show SQL* prints it)."""
    return json.dumps(spec, ensure_ascii=False)


# --- reading a funnel from outside: the URL, a saved funnel ---------------------------------------


def category_choices(categories: Sequence[str]) -> list[str]:
    """The catalogue's categories and each of their parents (`electronics` for
    `electronics.smartphone`): a step's category filter matches a whole path or a prefix of
    whole segments."""
    out: set[str] = set()
    for category in categories:
        parts = category.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return sorted(out)


@dataclass(frozen=True)
class Known:
    """The values a funnel may name: the warehouse's event names, categories (with parents)
    and brands."""

    events: frozenset[str]
    categories: frozenset[str]
    brands: Mapping[str, str]  # lower case -> as the catalogue spells it

    @classmethod
    def of(cls, c: dict) -> Known:
        kinds = c.get("kinds", {})
        return cls(
            events=frozenset(kinds.get("event_name", ())),
            categories=frozenset(category_choices(kinds.get("product_category", ()))),
            brands={b.lower(): b for b in kinds.get("product_brand", ())},
        )


def checked_text(value: Any, limit: int) -> str | None:
    return (vs.clean_text(value, limit) or None) if isinstance(value, str) else None


def checked_window(value: Any) -> str:
    """A window that reads as an interval (a number and a unit, or hh:mm), else the default."""
    text = checked_text(value, WINDOW_LIMIT)
    if text and any(ch.isdigit() for ch in text) and WINDOW_TEXT.fullmatch(text):
        return text
    return DEFAULT_WINDOW


def checked_step(raw: Mapping[str, Any], known: Known, *, drop_crossed_prices: bool = True) -> Step | None:
    """A step from outside: None when its event is not one the warehouse holds; a filter whose
    value is not valid is dropped, and so is a price range whose minimum is above its maximum
    (the builder keeps that one, `drop_crossed_prices=False`: the warehouse says what is wrong
    with what the person typed)."""
    event = raw.get("event")
    if not isinstance(event, str) or event not in known.events:
        return None
    category = raw.get("category")
    category = category if isinstance(category, str) and category in known.categories else None
    brand = raw.get("brand")
    brand = known.brands.get(brand.lower()) if isinstance(brand, str) else None
    product_id = raw.get("product_id")
    if isinstance(product_id, int) and not isinstance(product_id, bool):
        product_id = str(product_id)
    lo = vs.parse_number(raw.get("price_min"), 0, PRICE_LIMIT)
    hi = vs.parse_number(raw.get("price_max"), 0, PRICE_LIMIT)
    if drop_crossed_prices and lo is not None and hi is not None and lo > hi:
        lo = hi = None
    return Step(
        event=event,
        category=category,
        brand=brand,
        product_id=checked_text(product_id, TEXT_LIMITS["product_id"]),
        price_min=lo,
        price_max=hi,
        page_path=checked_text(raw.get("page_path"), TEXT_LIMITS["page_path"]),
        search=checked_text(raw.get("search"), TEXT_LIMITS["search"]),
    )


def checked_builder(raw: Mapping[str, Any], known: Known) -> Builder:
    """A builder from a spec (a saved funnel) or the URL's keys: its valid steps (at most 10),
    each choice among its choices or the default."""
    steps = raw.get("steps")
    steps = steps if isinstance(steps, list | tuple) else []
    checked = [checked_step(s, known) for s in steps[:MAX_STEPS] if isinstance(s, Mapping)]
    count, order, breakdown = raw.get("count"), raw.get("order"), raw.get("breakdown")
    return Builder(
        steps=tuple(s for s in checked if s is not None),
        window=checked_window(raw.get("window")) if raw.get("window") is not None else DEFAULT_WINDOW,
        count=count if isinstance(count, str) and count in COUNTS else "sessions",
        order=order if isinstance(order, str) and order in ORDERS else "ordered",
        breakdown=breakdown if isinstance(breakdown, str) and breakdown in BREAKDOWNS else "",
    )


def checked_spec(raw: Any, known: Known, c: dict) -> tuple[Builder, tuple[date, date], tuple, tuple]:
    """A saved spec as the page shows it: the builder, the dates (the default range when they
    are not two dates in order), the devices and sources the warehouse holds."""
    raw = raw if isinstance(raw, Mapping) else {}
    dates = vs.DATES.normalize([raw.get("from"), raw.get("to")], c)
    segment = []
    for param, key in ((vs.DEVICES, "device"), (vs.SOURCES, "source")):
        values = raw.get(key)
        values = values if isinstance(values, list) else []
        segment.append(param.normalize([v for v in values if isinstance(v, str)], c))
    return checked_builder(raw, known), dates, segment[0], segment[1]


# --- the builder in the URL ----------------------------------------------------------------------


def to_params(builder: Builder) -> list[tuple[str, str]]:
    """The builder's keys in the URL (none without steps; options only when not the default)."""
    if not builder.steps:
        return []
    pairs: list[tuple[str, str]] = []
    for k, step in enumerate(builder.steps, 1):
        pairs.append((f"step{k}", step.event))
        for key, value in step.filters().items():
            pairs.append(
                (f"step{k}_{key}", str(plain_number(value)) if key in ("price_min", "price_max") else value)
            )
    defaults = Builder()
    for key, value in (
        ("window", builder.window),
        ("count", builder.count),
        ("order", builder.order),
        ("by", builder.breakdown),
    ):
        if value != getattr(defaults, "breakdown" if key == "by" else key):
            pairs.append((key, value))
    return pairs


def from_params(query: vs.Query, known: Known) -> Builder:
    """The builder the URL's keys ask for (see `to_params`); hostile values dropped."""

    def first(key: str) -> str | None:
        return vs._first(query, key)

    steps = []
    for k in range(1, MAX_STEPS + 1):
        if first(f"step{k}") is None:
            continue
        steps.append({"event": first(f"step{k}"), **{key: first(f"step{k}_{key}") for key in FILTER_LABELS}})
    return checked_builder(
        {
            "steps": steps,
            "window": first("window"),
            "count": first("count"),
            "order": first("order"),
            "breakdown": first("by"),
        },
        known,
    )


@dataclass(frozen=True, eq=False)
class BuilderParam(vs.Param):
    """The Funnel page's builder in the URL: the steps and options of `to_params`."""

    input_id: None = None
    keys: tuple[str, ...] = (
        *(f"step{k}" for k in range(1, MAX_STEPS + 1)),
        *(f"step{k}_{key}" for k in range(1, MAX_STEPS + 1) for key in FILTER_LABELS),
        "window",
        "count",
        "order",
        "by",
    )

    def default(self, c: dict) -> Builder:
        return Builder()

    def parse(self, query: vs.Query, c: dict) -> Builder:
        return from_params(query, Known.of(c))

    def normalize(self, raw: Any, c: dict) -> Builder:
        return raw if isinstance(raw, Builder) else Builder()

    def encode(self, value: Builder, c: dict) -> list[tuple[str, str]]:
        return to_params(value)


BUILDER = BuilderParam()


def with_steps(builder: Builder, steps: Sequence[Step]) -> Builder:
    return replace(builder, steps=tuple(steps))
