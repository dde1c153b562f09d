"""Every number the dashboards show, worked out in plain Python from the hand-made events of
known_events.py under any filters (dates, devices, sources, product filters, a time zone):
an oracle independent of the SQL under test."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime, timedelta

import known_events as k

FIRST, LAST = k.FIRST_DATE, k.LAST_DATE


def quantile(values: list[float], q: float) -> float:
    """PostgreSQL's percentile_cont over `values`."""
    values = sorted(values)
    pos = (len(values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def event_time(event: dict) -> datetime:
    return datetime.fromisoformat(event["event_timestamp"])


def sessions(devices=None, sources=None, start: date = FIRST, end: date = LAST) -> list[k.Session]:
    """The sessions of a (UTC) session-date range, device types and traffic sources."""
    return [s for s in k.SESSIONS if k._keep(s, devices, sources, start, end)]


def events(devices=None, sources=None, start: date = FIRST, end: date = LAST) -> list[dict]:
    """The events of a UTC event-date range, device types and traffic sources."""
    return [
        e
        for s in k.SESSIONS
        if k._keep(s, devices, sources, date.min, date.max)
        for e in k.session_events(s)
        if start <= event_time(e).date() <= end
    ]


def _product_kept(pid: str, categories, brands, price_min, price_max) -> bool:
    _, category, brand, price = k.PRODUCTS[pid]
    return (
        (not categories or category in categories)
        and (not brands or brand in brands)
        and (price_min is None or price >= price_min)
        and (price_max is None or price <= price_max)
    )


def products(
    start: date = FIRST,
    end: date = LAST,
    devices=None,
    sources=None,
    categories=None,
    brands=None,
    price_min=None,
    price_max=None,
) -> dict[str, dict]:
    """Per product (of the product filters) with any activity: views, add-to-carts, units
    bought, orders and revenue of the events in the period."""
    out: dict[str, Counter] = defaultdict(Counter)
    for e in events(devices, sources, start, end):
        if e["event_name"] == "product_view":
            out[e["product"]["id"]]["views"] += 1
        elif e["event_name"] == "add_to_cart":
            out[e["product"]["id"]]["add_to_carts"] += 1
        elif e["event_name"] == "purchase":
            for item in e["order"]["items"]:
                m = out[item["product_id"]]
                m["purchases"] += item["quantity"]
                m["orders"] += 1
                m["revenue"] += item["price"] * item["quantity"]
    keys = ("views", "add_to_carts", "purchases", "orders", "revenue")
    return {
        pid: {key: m[key] for key in keys}
        for pid, m in out.items()
        if _product_kept(pid, categories, brands, price_min, price_max)
    }


def attention(**filters) -> list[dict]:
    """The scatter of views against purchases per view: products with views, most viewed
    first, with the quartiles behind the high-attention, low-conversion flag."""
    viewed = {pid: m for pid, m in products(**filters).items() if m["views"]}
    if not viewed:
        return []
    views_p75 = quantile([m["views"] for m in viewed.values()], 0.75)
    rate_p25 = quantile([m["purchases"] / m["views"] for m in viewed.values()], 0.25)
    rows = [
        {
            "product_id": pid,
            "product_name": k.PRODUCTS[pid][0],
            "views": m["views"],
            "purchases": m["purchases"],
            "purchase_rate_pct": 100 * m["purchases"] / m["views"],
            "views_p75": views_p75,
            "rate_p25_pct": 100 * rate_p25,
            "is_high_attention_low_conversion": m["views"] >= views_p75
            and m["purchases"] / m["views"] <= rate_p25,
        }
        for pid, m in viewed.items()
    ]
    return sorted(rows, key=lambda r: (-r["views"], r["product_id"]))


def ranking(rank_by: str, **filters) -> list[tuple[str, float]]:
    """(product, metric) in rank order (ties by product id), as the ranking bars show them."""
    rows = products(**filters)

    def metric(m: dict) -> float | None:
        if rank_by == "purchase_rate":
            return None if not m["views"] else round(100 * m["purchases"] / m["views"], 1)
        return m[rank_by]

    def order(pid: str):
        m = rows[pid]
        exact = (
            (m["purchases"] / m["views"] if m["views"] else None)
            if rank_by == "purchase_rate"
            else m[rank_by]
        )
        return (exact is None, -(exact or 0), pid)

    return [(pid, metric(rows[pid])) for pid in sorted(rows, key=order)]


def revenue(session: k.Session) -> float:
    return sum(k.PRODUCTS[pid][3] * qty for pid, qty in session.cart) if session.purchase else 0.0


def kpis(start: date, end: date, devices=None, sources=None) -> dict:
    """The Overview's KPIs: events (by UTC event date), sessions, purchasing sessions, revenue
    and conversion (by UTC session date)."""
    kept = sessions(devices, sources, start, end)
    buying = [s for s in kept if s.purchase]
    return {
        "events": len(events(devices, sources, start, end)),
        "sessions": len(kept),
        "purchasing_sessions": len(buying),
        "revenue": sum(revenue(s) for s in buying),
        "conversion_pct": round(100 * len(buying) / len(kept), 2) if kept else None,
    }


def events_over_time(
    grain: str, start: date = FIRST, end: date = LAST, names=None, devices=None, sources=None
):
    """Events per (period start as a naive UTC datetime, event type) at an hour, day or week grain."""
    counts: Counter = Counter()
    for e in events(devices, sources, start, end):
        if names and e["event_name"] not in names:
            continue
        at = event_time(e).replace(tzinfo=None, minute=0, second=0)
        if grain != "hour":
            at = at.replace(hour=0)
        if grain == "week":
            at -= timedelta(days=at.weekday())
        counts[(at, e["event_name"])] += 1
    return dict(counts)
