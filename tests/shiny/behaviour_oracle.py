"""The Behaviour page's numbers worked out in plain Python from the hand-made sessions of
known_events.py: each session's path and purchase path, the step-to-step flows, the weekly
retention cohorts and the attribution of each order. Retention and attribution take the
sessions (known_events.SESSIONS, whose every visitor has one session, or with the returning
visitors of known_events.RETURNING too): a visitor is their anonymous id."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import known_events as k

FIRST, LAST = k.FIRST_DATE, k.LAST_DATE
DEPTH = 5  # dbt var path_depth's default
LOOKBACK_DAYS = 30  # dbt var attribution_lookback_days's default


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


def visitor(s: k.Session) -> str:
    return s.visitor or s.session_id


def rounded(value: Decimal, places: int) -> Decimal:
    """PostgreSQL's round(numeric, places): halves away from zero."""
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def share_pct(part, whole, places: int = 1) -> float | None:
    return float(rounded(Decimal(100) * Decimal(part) / Decimal(whole), places)) if whole else None


def retention(
    kind: str, start=FIRST, end=LAST, devices=None, sources=None, sessions=k.SESSIONS
) -> dict[tuple, tuple[int, int, float]]:
    """(cohort week, weeks since) -> (cohort users, retained users, retained %), for the cohorts
    whose week overlaps the dates. A visitor's cohort is the week of their first session
    (purchasers: of their first purchasing session), whose device and source the filters look
    at; they are retained in a week when they had a session (a purchasing one) in it. Every
    cohort has a row for each week up to the newest week with sessions."""
    newest = max(monday(s.start.date()) for s in sessions)
    per_visitor: dict[str, list[k.Session]] = defaultdict(list)
    for s in sorted(sessions, key=lambda s: (s.start, s.session_id)):
        if kind == "visitors" or s.purchase:
            per_visitor[visitor(s)].append(s)
    users: Counter = Counter()
    retained: Counter = Counter()
    for own in per_visitor.values():
        first = own[0]
        week = monday(first.start.date())
        if not monday(start) <= week <= end or not k._keep(first, devices, sources, date.min, date.max):
            continue
        active = {(monday(s.start.date()) - week).days // 7 for s in own}
        for since in range((newest - week).days // 7 + 1):
            users[(week, since)] += 1
            retained[(week, since)] += int(since in active)
    return {key: (n, retained[key], share_pct(retained[key], n)) for key, n in users.items()}


def ordered_at(s: k.Session) -> datetime:
    """When the session's purchase event happened (its last event)."""
    return datetime.fromisoformat(k.session_events(s)[-1]["event_timestamp"])


def credits(sessions=k.SESSIONS) -> list[dict]:
    """Every order's credit to each of its touches under each model. The touches of an order are
    its visitor's sessions that started within LOOKBACK_DAYS before the purchase, up to the
    purchasing session; first touch credits the earliest, last touch the purchasing session,
    linear an equal share each (rounded to 6 places, money to cents; the last touch takes the
    rest)."""
    per_visitor: dict[str, list[k.Session]] = defaultdict(list)
    for s in sessions:
        per_visitor[visitor(s)].append(s)
    out = []
    for s in sessions:
        if not s.purchase:
            continue
        at = ordered_at(s)
        touches = sorted(
            (
                t
                for t in per_visitor[visitor(s)]
                if t is s or (t.start <= s.start and t.start >= at - timedelta(days=LOOKBACK_DAYS))
            ),
            key=lambda t: (t.start, t.session_id),
        )
        n, money = len(touches), Decimal(str(revenue(s)))
        even_credit, even_money = rounded(Decimal(1) / n, 6), rounded(money / n, 2)
        for number, touch in enumerate(touches, start=1):
            first, last = number == 1, number == n
            for model, credit, money_credit in (
                ("first_touch", Decimal(int(first)), money if first else Decimal(0)),
                ("last_touch", Decimal(int(last)), money if last else Decimal(0)),
                (
                    "linear",
                    1 - (n - 1) * even_credit if last else even_credit,
                    money - (n - 1) * even_money if last else even_money,
                ),
            ):
                if credit:
                    out.append(
                        {
                            "order_date": at.date(),
                            "device": s.device,
                            "source": touch.source,
                            "model": model,
                            "credit": credit,
                            "revenue": money_credit,
                        }
                    )
    return out


def attribution(
    start=FIRST, end=LAST, devices=None, sources=None, sessions=k.SESSIONS
) -> dict[tuple, tuple[float, float, float]]:
    """(traffic source, model) -> (attributed orders, revenue, share of the model's revenue in
    %), for the orders of the dates (UTC order date); the device is the purchasing session's,
    the source the credited touch's."""
    kept_credits = [
        c
        for c in credits(sessions)
        if start <= c["order_date"] <= end
        and (not devices or c["device"] in devices)
        and (not sources or c["source"] in sources)
    ]
    orders: dict[tuple, Decimal] = defaultdict(Decimal)
    money: dict[tuple, Decimal] = defaultdict(Decimal)
    per_model: dict[str, Decimal] = defaultdict(Decimal)
    for c in kept_credits:
        orders[(c["source"], c["model"])] += c["credit"]
        money[(c["source"], c["model"])] += c["revenue"]
        per_model[c["model"]] += c["revenue"]
    return {
        key: (float(rounded(n, 2)), float(money[key]), share_pct(money[key], per_model[key[1]]))
        for key, n in orders.items()
    }
