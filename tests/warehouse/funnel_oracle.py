"""A reference implementation of analytics.funnel(spec) over raw lines, in plain Python and by
brute force: every chain of events is tried, none of the warehouse's SQL is used. The spec's
semantics (docs/warehouse.md "Ad-hoc funnels"):

- an entity (session, or stitched user) reaches step k when it has distinct events e1..ek, e_i
  matching step i, with time(e1) <= ... <= time(ek) (ties count; with order "any" in any order),
  step 1's event dated (UTC) within [from, to] and in a session passing the funnel-wide filters,
  and all k events within the window of the earliest;
- the time it reached step k is the earliest time its k-th event can have over those chains;
  median_seconds_from_previous is the median over the entities at step k of (reached k - reached k-1).
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from warehouse.expected import Expected


@dataclass(frozen=True)
class Ev:
    event_id: str
    name: str
    at: datetime
    session_id: str
    user_key: str
    product_id: str | None
    category: str | None
    brand: str | None
    price: float | None
    page_path: str | None
    search: str | None
    order_items: tuple[tuple, ...]  # (product_id, category, brand, price) of each item's product


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _text(value) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def events_from_lines(lines: list[object]) -> list[Ev]:
    """The events fact_events holds (first valid copy of each event_id, bots out), with the
    stitched user key and each product's latest attributes by event time."""
    expected = Expected.from_lines(lines)
    first_user: dict[str, tuple[datetime, int, str]] = {}
    latest: dict[str, dict[str, tuple[datetime, object]]] = defaultdict(dict)
    for order, event in enumerate(expected.events):
        at = _moment(event["event_timestamp"])
        if event.get("user_id"):
            known = first_user.get(event["anonymous_id"])
            if known is None or (at, order) < known[:2]:
                first_user[event["anonymous_id"]] = (at, order, event["user_id"])
        sightings = []
        if isinstance(event.get("product"), dict):
            sightings.append(event["product"])
        for item in (event.get("order") or {}).get("items") or []:
            sightings.append(
                {"id": item.get("product_id"), **{k: v for k, v in item.items() if k != "product_id"}}
            )
        for product in sightings:
            for field in ("category", "brand", "price"):
                if product.get(field) is None or product.get("id") is None:
                    continue
                seen = latest[str(product["id"])].get(field)
                if seen is None or at >= seen[0]:
                    latest[str(product["id"])][field] = (at, product[field])

    def attribute(product_id, field):
        value = latest.get(str(product_id), {}).get(field) if product_id is not None else None
        return value[1] if value else None

    out = []
    for event in expected.events:
        product_id = _text((event.get("product") or {}).get("id"))
        items = (event.get("order") or {}).get("items") or []
        user_key = event.get("user_id") or (first_user.get(event["anonymous_id"]) or (None, None, None))[2]
        price = attribute(product_id, "price")
        out.append(
            Ev(
                event_id=event["event_id"],
                name=event["event_name"].strip().lower(),
                at=_moment(event["event_timestamp"]),
                session_id=event["session_id"],
                user_key=user_key or event["anonymous_id"],
                product_id=product_id,
                category=_text(attribute(product_id, "category")),
                brand=_text(attribute(product_id, "brand")),
                price=_number(price),
                page_path=(event.get("page") or {}).get("path"),
                search=(event.get("search") or {}).get("query"),
                order_items=tuple(
                    (
                        str(item.get("product_id")),
                        _text(attribute(item.get("product_id"), "category")),
                        _text(attribute(item.get("product_id"), "brand")),
                        _number(attribute(item.get("product_id"), "price")),
                    )
                    for item in items
                ),
            )
        )
    return out


def _number(value) -> float | None:
    return float(value) if value is not None else None


def _product_matches(step: dict, product_id, category, brand, price) -> bool:
    if step.get("category"):
        wanted = step["category"].strip().lower()
        have = (category or "").lower()
        if not (have == wanted or have.startswith((wanted + ".", wanted + "/"))):
            return False
    if step.get("brand") and (brand or "").lower() != step["brand"].strip().lower():
        return False
    if step.get("product_id") is not None and str(product_id) != str(step["product_id"]).strip():
        return False
    if step.get("price_min") is not None and (price is None or price < float(step["price_min"])):
        return False
    if step.get("price_max") is not None and (price is None or price > float(step["price_max"])):
        return False
    return True


def matches(step: dict, ev: Ev) -> bool:
    if ev.name != step["event"].strip().lower():
        return False
    if step.get("page_path") and not (ev.page_path or "").startswith(step["page_path"]):
        return False
    if step.get("search") and step["search"].strip().lower() not in (ev.search or "").lower():
        return False
    if not any(
        step.get(k) is not None for k in ("category", "brand", "product_id", "price_min", "price_max")
    ):
        return True
    if ev.name == "purchase":
        return any(_product_matches(step, *item) for item in ev.order_items)
        return False
    return _product_matches(step, ev.product_id, ev.category, ev.brand, ev.price)


def parse_window(text: str) -> timedelta:
    number, unit = re.fullmatch(r"\s*(\d+)\s*(second|minute|hour|day)s?\s*", text).groups()
    return timedelta(**{unit + "s": int(number)})


def _ordered_reach(
    events: list[tuple[datetime, set[int]]], n: int, window: timedelta
) -> list[datetime | None]:
    reached: list[datetime | None] = [None] * n

    def extend(level: int, start: datetime, last: datetime, used: frozenset[int]) -> None:
        # level steps are done; the last one at time last
        if level == n:
            return
        for index, (at, steps) in enumerate(events):
            if index in used or level + 1 not in steps or at < last or at - start > window:
                continue
            if reached[level] is None or at < reached[level]:
                reached[level] = at
            extend(level + 1, start, at, used | {index})

    for index, (at, steps) in enumerate(events):
        if 1 in steps:
            if reached[0] is None or at < reached[0]:
                reached[0] = at
            extend(1, at, at, frozenset({index}))
    return reached


def _any_reach(events: list[tuple[datetime, set[int]]], n: int, window: timedelta) -> list[datetime | None]:
    reached: list[datetime | None] = [None] * n

    def assign(step: int, k: int, chosen: list[int]) -> None:
        if step > k:
            times = [events[i][0] for i in chosen]
            if max(times) - min(times) <= window and (reached[k - 1] is None or max(times) < reached[k - 1]):
                reached[k - 1] = max(times)
            return
        for index, (at, steps) in enumerate(events):
            if index in chosen or step not in steps:
                continue
            times = [events[i][0] for i in chosen] + [at]
            if max(times) - min(times) > window:
                continue
            assign(step + 1, k, [*chosen, index])

    for k in range(1, n + 1):
        assign(1, k, [])
        if reached[k - 1] is None:
            break
    return reached


def sessions_from_lines(events: list[Ev], lines: list[object]) -> dict[str, dict]:
    """Each session's device and traffic, from its first event (by time, then event_id), named
    as the contract's staging names them (lower-cased; no source: "(direct)")."""
    payloads = {line["event_id"]: line for line in Expected.from_lines(lines).events}
    first: dict[str, Ev] = {}
    for ev in events:
        if ev.session_id not in first or (ev.at, ev.event_id) < (
            first[ev.session_id].at,
            first[ev.session_id].event_id,
        ):
            first[ev.session_id] = ev
    out = {}
    for session_id, ev in first.items():
        payload = payloads[ev.event_id]
        raw_device = (payload.get("device") or {}).get("type")
        device = "unknown" if raw_device is None else str(raw_device).strip().lower()
        traffic = payload.get("traffic") or {}
        out[session_id] = {
            "device": device if device in ("unknown", "desktop", "mobile", "tablet", "other") else "other",
            "source": (traffic.get("source") or "").strip().lower() or "(direct)",
            "medium": (traffic.get("medium") or "").strip().lower() or "(none)",
            "campaign": traffic.get("campaign"),
        }
    return out


def funnel(events: list[Ev], spec: dict, sessions: dict[str, dict]) -> list[tuple]:
    """Rows as analytics.funnel(spec) returns them: (breakdown, step, entities,
    median_seconds_from_previous). sessions: session_id -> {device, source, medium, campaign}."""
    steps = spec["steps"]
    n = len(steps)
    first, last = date.fromisoformat(spec["from"]), date.fromisoformat(spec["to"])
    window = parse_window(spec.get("window", "14 days"))
    by = spec.get("breakdown")
    entity_of = (lambda ev: ev.user_key) if spec.get("count") == "users" else (lambda ev: ev.session_id)
    filters = {key: spec.get(key) for key in ("device", "source", "medium", "campaign") if spec.get(key)}

    def session_passes(ev: Ev) -> bool:
        attrs = sessions.get(ev.session_id, {})
        return all(attrs.get(key) in values for key, values in filters.items())

    def value_of(ev: Ev) -> str:
        value = {
            "device": lambda: sessions.get(ev.session_id, {}).get("device"),
            "source": lambda: sessions.get(ev.session_id, {}).get("source"),
            "category": lambda: ev.category,
            "brand": lambda: ev.brand.lower() if ev.brand else None,
        }[by]()
        return value if value is not None else "(none)"

    by_entity: dict[str, list[Ev]] = defaultdict(list)
    for ev in events:
        by_entity[entity_of(ev)].append(ev)
    results: dict[str | None, list[list[datetime | None]]] = defaultdict(list)
    for entity_events in by_entity.values():
        entity_events.sort(key=lambda ev: ev.at)
        marked = []
        for ev in entity_events:
            matched = {k + 1 for k, step in enumerate(steps) if matches(step, ev)}
            if 1 in matched and not (first <= ev.at.date() <= last and session_passes(ev)):
                matched.discard(1)
            if matched:
                marked.append((ev, matched))
        values = {value_of(ev) if by else None for ev, matched in marked if 1 in matched}
        for value in values:
            chain_events = [
                (
                    ev.at,
                    matched if (1 not in matched or by is None or value_of(ev) == value) else matched - {1},
                )
                for ev, matched in marked
            ]
            reach = _any_reach if spec.get("order") == "any" else _ordered_reach
            results[value].append(reach(chain_events, n, window))
    rows = []
    for value in sorted(results, key=lambda v: (v is not None, v or "")):
        for k in range(n):
            at_step = [r for r in results[value] if r[k] is not None]
            median = (
                statistics.median((r[k] - r[k - 1]).total_seconds() for r in at_step)
                if k and at_step
                else None
            )
            rows.append((value, k + 1, len(at_step), median))
    if not results and not by:
        rows = [(None, k + 1, 0, None) for k in range(n)]
    return rows
