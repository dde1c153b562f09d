"""Every number the dashboards show, worked out in plain Python from the hand-made events of
known_events.py under any filters (dates, devices, sources, product filters, a time zone):
an oracle independent of the SQL under test."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

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


STEPS = ["page_view", "product_view", "add_to_cart", "checkout_start", "purchase"]


def reached(s: k.Session) -> dict[str, bool]:
    """The funnel steps a session reached (every session walks them in order)."""
    return {
        "page_view": True,
        "product_view": bool(s.views),
        "add_to_cart": bool(s.cart),
        "checkout_start": s.checkout,
        "purchase": s.purchase,
    }


def funnel(start: date = FIRST, end: date = LAST, devices=None, sources=None) -> list[int]:
    kept = sessions(devices, sources, start, end)
    return [sum(reached(s)[step] for s in kept) for step in STEPS]


def funnel_breakdown(
    dimension: str, start: date = FIRST, end: date = LAST, devices=None, sources=None
) -> dict:
    """{breakdown value: sessions per step}; weeks by their Monday (as text)."""

    def key(s: k.Session) -> str:
        if dimension == "week":
            day = s.start.date()
            return (day - timedelta(days=day.weekday())).isoformat()
        return {"device_type": s.device, "traffic_source": s.source}[dimension]

    out: dict[str, list[int]] = {}
    for s in sessions(devices, sources, start, end):
        row = out.setdefault(key(s), [0] * len(STEPS))
        for i, step in enumerate(STEPS):
            row[i] += reached(s)[step]
    return out


def time_to_convert(start: date = FIRST, end: date = LAST, devices=None, sources=None) -> dict:
    kept = sessions(devices, sources, start, end)
    seconds = [(len(k.session_events(s)) - 1) * 60.0 for s in kept if s.purchase]
    return {
        "purchasing_sessions": len(seconds),
        "product_view_sessions": sum(1 for s in kept if s.views),
        "product_view_to_checkout_sessions": sum(1 for s in kept if s.views and s.checkout),
        "median_seconds_to_purchase": quantile(seconds, 0.5) if seconds else None,
        "p25_seconds_to_purchase": quantile(seconds, 0.25) if seconds else None,
        "p75_seconds_to_purchase": quantile(seconds, 0.75) if seconds else None,
    }


def local(tz: str, start: date, end: date, names=None, devices=None, sources=None):
    """(per local hour, per local date, per (isoweekday, hour), per (device, event type), per
    (source, event type)) event counts in a reporting time zone; the warehouse keeps hourly
    UTC buckets, so an event counts at its UTC hour's start in the zone."""
    zone = ZoneInfo(tz)
    hours, days, grid, by_device, by_source = Counter(), Counter(), Counter(), Counter(), Counter()
    for s in k.SESSIONS:
        if not k._keep(s, devices, sources, date.min, date.max):
            continue
        for e in k.session_events(s):
            if names and e["event_name"] not in names:
                continue
            at = event_time(e).replace(minute=0, second=0).astimezone(zone)
            if not start <= at.date() <= end:
                continue
            hours[(at.replace(tzinfo=None), e["event_name"])] += 1
            days[(at.date(), e["event_name"])] += 1
            grid[(at.isoweekday(), at.hour)] += 1
            by_device[(s.device, e["event_name"])] += 1
            by_source[(s.source, e["event_name"])] += 1
    return hours, days, grid, by_device, by_source


def weekday_conversion(start: date = FIRST, end: date = LAST, devices=None, sources=None) -> dict:
    """{isoweekday of the UTC session date: (sessions, purchasing sessions)}."""
    out: dict[int, tuple[int, int]] = {}
    for s in sessions(devices, sources, start, end):
        n, p = out.get(s.start.date().isoweekday(), (0, 0))
        out[s.start.date().isoweekday()] = (n + 1, p + int(s.purchase))
    return out


def campaigns(start: date = FIRST, end: date = LAST, devices=None, sources=None) -> dict:
    """{(session date, campaign or "(none)"): sessions}."""
    return dict(
        Counter((s.start.date(), s.campaign or "(none)") for s in sessions(devices, sources, start, end))
    )


def rollup(dimension: str, **filters) -> dict:
    """{category or brand: (products, views, add-to-carts, units, revenue)} over the products
    with activity in the period."""
    index = {"product_category": 1, "product_brand": 2}[dimension]
    out: dict[str, list] = {}
    for pid, m in products(**filters).items():
        row = out.setdefault(k.PRODUCTS[pid][index], [0, 0, 0, 0, 0.0])
        for i, value in enumerate([1, m["views"], m["add_to_carts"], m["purchases"], m["revenue"]]):
            row[i] += value
    return {key: tuple(v) for key, v in out.items()}


def rarely_viewed(limit: int = 15, **filters) -> list[tuple[str, int]]:
    """(product, views) of the product filters' products, least viewed first (never-viewed ones too)."""
    f = {key: filters.get(key) for key in ("categories", "brands", "price_min", "price_max")}
    measured = products(**filters)
    kept = [pid for pid in k.PRODUCTS if _product_kept(pid, *f.values())]
    views = {pid: measured.get(pid, {}).get("views", 0) for pid in kept}
    return sorted(views.items(), key=lambda item: (item[1], item[0]))[:limit]
