"""The Behaviour page's numbers worked out in plain Python from the hand-made sessions of
known_events.py: each session's path and purchase path, the step-to-step flows, the weekly retention cohorts
and the attribution of each order (every known visitor is a user of one session, so each
order has one touch: its own session)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, timedelta

import known_events as k

FIRST, LAST = k.FIRST_DATE, k.LAST_DATE
DEPTH = 5  # dbt var path_depth's default


def steps(s: k.Session) -> list[str]:
    """The session's steps in order, consecutive repeats collapsed: every known session starts
    with a page view of '/' (home), its other events are named by their event name."""
    out = ["home"]
    for name, present in (
        ("search", s.search),
        ("product_view", s.views),
        ("add_to_cart", s.cart),
        ("checkout_start", s.checkout),
        ("purchase", s.purchase),
    ):
        if present:
            out.append(name)
    return out


def path(s: k.Session) -> str:
    shown = steps(s)
    text = " > ".join(shown[:DEPTH])
    return text + " > …" if len(shown) > DEPTH else text


def purchase_path(s: k.Session) -> str | None:
    """The steps up to and including the first purchase, the last DEPTH of them ('… > ' before
    them when earlier ones were cut); None without a purchase."""
    shown = steps(s)
    if "purchase" not in shown:
        return None
    to_purchase = shown[: shown.index("purchase") + 1]
    text = " > ".join(to_purchase[-DEPTH:])
    return "… > " + text if len(to_purchase) > DEPTH else text


def revenue(s: k.Session) -> float:
    return float(sum(k.PRODUCTS[pid][3] * qty for pid, qty in s.cart)) if s.purchase else 0.0


def kept(start=FIRST, end=LAST, devices=None, sources=None) -> list[k.Session]:
    return [s for s in k.SESSIONS if k._keep(s, devices, sources, start, end)]


def top_paths(start=FIRST, end=LAST, devices=None, sources=None) -> dict[str, tuple[int, int]]:
    """path -> (sessions, purchase sessions)."""
    sessions, purchases = Counter(), Counter()
    for s in kept(start, end, devices, sources):
        sessions[path(s)] += 1
        purchases[path(s)] += int(s.purchase)
    return {p: (n, purchases[p]) for p, n in sessions.items()}


def top_purchase_paths(start=FIRST, end=LAST, devices=None, sources=None) -> dict[str, int]:
    """purchase path -> purchasing sessions that took it."""
    out: Counter = Counter()
    for s in kept(start, end, devices, sources):
        if (taken := purchase_path(s)) is not None:
            out[taken] += 1
    return dict(out)


def flows(start=FIRST, end=LAST, first_step=None, devices=None, sources=None) -> dict[tuple, int]:
    """(step number, from step, to step) -> sessions."""
    out: Counter = Counter()
    for s in kept(start, end, devices, sources):
        shown = [step for step in path(s).split(" > ") if step != "…"]
        if first_step and shown[0] != first_step:
            continue
        for number, (a, b) in enumerate(zip(shown, shown[1:], strict=False), start=1):
            out[(number, a, b)] += 1
    return dict(out)


def monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def retention(kind: str, start=FIRST, end=LAST, devices=None, sources=None) -> dict[tuple, tuple[int, int]]:
    """(cohort week, weeks since) -> (cohort users, retained users): each known visitor has
    one session, so every cohort is retained only in its own week (week 0), and the newest
    week with sessions is the one of 2 March."""
    users = [
        s
        for s in k.SESSIONS
        if k._keep(s, devices, sources, date.min, date.max) and (kind == "visitors" or s.purchase)
    ]
    out: Counter = Counter()
    for s in users:
        week = monday(s.start.date())
        if monday(start) <= week <= end:
            out[(week, 0)] += 1
    return {key: (n, n) for key, n in out.items()}


def attribution(start=FIRST, end=LAST, devices=None, sources=None) -> dict[tuple, tuple[float, float]]:
    """(traffic source, model) -> (attributed orders, revenue): one touch per order, so every
    model credits the order's own session."""
    out: dict[tuple, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for s in kept(start, end, devices, sources):
        if not s.purchase:
            continue
        for model in ("first_touch", "last_touch", "linear"):
            out[(s.source, model)][0] += 1
            out[(s.source, model)][1] += revenue(s)
    return {key: (orders, money) for key, (orders, money) in out.items()}
