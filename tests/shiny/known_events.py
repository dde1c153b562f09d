"""A small, hand-built shop history whose every number the dashboards show can be worked out
by hand (or by the plain Python in this module), independently of the SQL under test.

Each session walks the funnel strictly in order, one event a minute, and stops at some step:
page view -> product views -> add to cart -> checkout -> purchase. Sessions start at chosen
UTC times (some near midnight, so a reporting time zone moves them to another day)."""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
)

PRODUCTS = {
    "P1": ("Trail Runner", "shoes", "acme", 80.0),
    "P2": ("Road Racer", "shoes", "globex", 120.0),
    "P3": ("Canvas Tote", "bags", "acme", 25.0),
    "P4": ("Leather Satchel", "bags", "initech", 200.0),
    "P5": ("Sun Hat", "hats", "globex", 15.0),
    "P6": ("Winter Beanie", "hats", "initech", 12.0),
}


@dataclass
class Session:
    session_id: str
    start: datetime
    device: str
    source: str
    campaign: str | None
    views: list[str]
    cart: list[tuple[str, int]] = field(default_factory=list)
    checkout: bool = False
    purchase: bool = False
    search: bool = False
    visitor: str | None = None  # the visitor (anonymous id) of several sessions; None: its own

    @property
    def anonymous_id(self) -> str:
        return "anon-" + (self.visitor or self.session_id)


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


SESSIONS = [
    Session("s01", _t("2026-03-02 09:00"), "desktop", "google", None, ["P1", "P2"], [("P1", 1)], True, True),
    Session("s02", _t("2026-03-02 09:30"), "mobile", "google", None, ["P1"]),
    Session("s03", _t("2026-03-02 13:10"), "mobile", "newsletter", "spring_sale", ["P3"], [("P3", 2)], True),
    Session(
        "s04",
        _t("2026-03-02 23:30"),
        "desktop",
        "newsletter",
        "spring_sale",
        ["P2", "P4"],
        [("P4", 1)],
        True,
        True,
    ),
    Session(
        "s05", _t("2026-03-03 00:15"), "tablet", "facebook", "spring_sale", ["P5"], [("P5", 3)], True, True
    ),
    Session("s06", _t("2026-03-03 08:05"), "desktop", "google", None, [], search=True),
    Session("s07", _t("2026-03-03 12:00"), "mobile", "facebook", None, ["P1", "P3"], [("P1", 1)]),
    Session("s08", _t("2026-03-03 12:40"), "mobile", "google", None, ["P2"], [("P2", 1)], True),
    Session(
        "s09", _t("2026-03-03 18:20"), "desktop", "newsletter", "spring_sale", ["P1"], [("P1", 2)], True, True
    ),
    Session("s10", _t("2026-03-03 21:55"), "tablet", "google", None, []),
    Session("s11", _t("2026-03-04 07:45"), "mobile", "google", None, ["P2", "P1"], search=True),
    Session(
        "s12", _t("2026-03-04 10:10"), "desktop", "facebook", None, ["P3"], [("P3", 1), ("P6", 1)], True, True
    ),
    Session("s13", _t("2026-03-04 15:30"), "mobile", "newsletter", "spring_sale", ["P4"]),
    Session("s14", _t("2026-03-04 16:00"), "desktop", "google", None, ["P1", "P2", "P4"], [("P2", 1)]),
    Session("s15", _t("2026-03-04 22:50"), "mobile", "google", None, ["P5"], [("P5", 1)], True, True),
]
FIRST_DATE = date(2026, 3, 2)
LAST_DATE = date(2026, 3, 4)
INVALID_LINES = 2  # events with an empty session_id: quarantined by dbt (a missing one is derived)

# Visitors who come back, for the Behaviour page's retention and attribution (in a warehouse of
# their own, beside SESSIONS, so every other known number stays what it is). Each SESSIONS
# visitor has one session in the week of 2 March; these three are first seen in the week
# before (23 February), and two come back in the known week from another source:
# - v-returning browses from a newsletter on 26 February and buys on 3 March from google (an
#   order of two touches: first, last and linear credit differ);
# - v-loyal buys on 24 February (facebook) and again on 4 March (newsletter): a purchaser
#   cohort retained in week 1, and a second two-touch order;
# - v-once visits on 25 February and never comes back.
RETURNING = [
    Session(
        "r01", _t("2026-02-26 10:00"), "desktop", "newsletter", "spring_sale", ["P2"], visitor="v-returning"
    ),
    Session(
        "r02",
        _t("2026-03-03 11:00"),
        "mobile",
        "google",
        None,
        ["P2"],
        [("P2", 1)],
        True,
        True,
        visitor="v-returning",
    ),
    Session(
        "r03",
        _t("2026-02-24 09:00"),
        "tablet",
        "facebook",
        None,
        ["P5"],
        [("P5", 1)],
        True,
        True,
        visitor="v-loyal",
    ),
    Session(
        "r04",
        _t("2026-03-04 14:00"),
        "desktop",
        "newsletter",
        "spring_sale",
        ["P3"],
        [("P3", 1)],
        True,
        True,
        visitor="v-loyal",
    ),
    Session("r05", _t("2026-02-25 16:00"), "mobile", "google", None, [], visitor="v-once"),
]


def _event(session: Session, name: str, at: datetime, **extra) -> dict:
    event = {
        "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{session.session_id}/{name}/{at.isoformat()}")),
        "event_name": name,
        "event_timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "received_at": (at + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "anonymous_id": session.anonymous_id,
        "session_id": session.session_id,
        "user_id": None,
        "schema_version": "1",
        "page": {"url": "https://shop.example/", "path": "/", "title": "Shop", "referrer": None},
        "device": {"type": session.device, "user_agent": USER_AGENT, "os": "Linux", "browser": "Chrome"},
        "traffic": {"source": session.source, "medium": "cpc", "campaign": session.campaign},
    }
    event.update(extra)
    return event


def _product(pid: str) -> dict:
    name, category, brand, price = PRODUCTS[pid]
    return {"id": pid, "name": name, "category": category, "brand": brand, "price": price, "currency": "EUR"}


def session_events(session: Session) -> list[dict]:
    at = session.start
    events = [_event(session, "page_view", at)]

    def tick():
        nonlocal at
        at += timedelta(minutes=1)
        return at

    if session.search:
        events.append(_event(session, "search", tick(), search={"query": "shoes", "results_count": 2}))
    for pid in session.views:
        events.append(_event(session, "product_view", tick(), product=_product(pid)))
    for pid, qty in session.cart:
        events.append(_event(session, "add_to_cart", tick(), product=_product(pid), quantity=qty))
    if session.checkout:
        events.append(_event(session, "checkout_start", tick()))
    if session.purchase:
        items = [
            {
                "product_id": pid,
                "name": PRODUCTS[pid][0],
                "category": PRODUCTS[pid][1],
                "brand": PRODUCTS[pid][2],
                "price": PRODUCTS[pid][3],
                "quantity": qty,
            }
            for pid, qty in session.cart
        ]
        revenue = sum(PRODUCTS[pid][3] * qty for pid, qty in session.cart)
        order = {"order_id": "o-" + session.session_id, "revenue": revenue, "currency": "EUR", "items": items}
        events.append(_event(session, "purchase", tick(), order=order))
    return events


def all_events(sessions: list[Session] = SESSIONS) -> list[dict]:
    return [e for s in sessions for e in session_events(s)]


def invalid_lines() -> list[dict]:
    bad = []
    for i in range(INVALID_LINES):
        e = _event(SESSIONS[0], "page_view", SESSIONS[0].start + timedelta(seconds=10 + i))
        e["event_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"invalid/{i}"))
        e["session_id"] = ""
        bad.append(e)
    return bad


def insert_raw(conn, loaded_at: datetime, sessions: list[Session] = SESSIONS) -> int:
    """Insert the sessions' events (and the invalid lines) as one loaded object of raw.clickstream_events."""
    rows = all_events(sessions) + invalid_lines()
    load_id = str(uuid.uuid4())
    with conn.cursor() as cur:
        for i, event in enumerate(rows, start=1):
            cur.execute(
                "insert into raw.clickstream_events"
                " (payload, bucket, object_key, line_number, object_etag, load_id, loaded_at)"
                " values (%s, 'known', 'events/2026/03/known.json', %s, 'etag-1', %s, %s)",
                (json.dumps(event), i, load_id, loaded_at),
            )
        cur.execute(
            "insert into raw.load_runs (load_id, started_at, finished_at, objects, events, rejects, status)"
            " values (%s, %s, %s, 1, %s, 0, 'succeeded')",
            (load_id, loaded_at - timedelta(seconds=5), loaded_at, len(rows)),
        )
    conn.commit()
    return len(rows)


# --- expected numbers, worked out in Python over the events -----------------------------------


def _keep(s: Session, devices=None, sources=None, start=FIRST_DATE, end=LAST_DATE) -> bool:
    return (
        start <= s.start.date() <= end
        and (not devices or s.device in devices)
        and (not sources or s.source in sources)
    )


def expected_funnel(devices=None, sources=None, start=FIRST_DATE, end=LAST_DATE) -> list[int]:
    kept = [s for s in SESSIONS if _keep(s, devices, sources, start, end)]
    return [
        len(kept),
        sum(1 for s in kept if s.views),
        sum(1 for s in kept if s.cart),
        sum(1 for s in kept if s.checkout),
        sum(1 for s in kept if s.purchase),
    ]


def expected_events_per_day(names=None, devices=None, sources=None) -> dict[tuple[date, str], int]:
    counts: Counter = Counter()
    for s in SESSIONS:
        if not _keep(s, devices, sources):
            continue
        for e in session_events(s):
            if names and e["event_name"] not in names:
                continue
            day = datetime.fromisoformat(e["event_timestamp"]).date()
            counts[(day, e["event_name"])] += 1
    return dict(counts)


def expected_local(
    tz: str, names=None, start: date | None = None, end: date | None = None
) -> tuple[Counter, Counter, Counter]:
    """(per local hour, per local date, per (isoweekday, hour)) counts of the events. The
    warehouse keeps hourly UTC buckets, so an event counts at its UTC hour's start in the zone
    (the same instant for whole-hour offsets; half-hour zones show hours at :30)."""
    zone = ZoneInfo(tz)
    hours: Counter = Counter()
    days: Counter = Counter()
    grid: Counter = Counter()
    for e in all_events():
        if names and e["event_name"] not in names:
            continue
        utc_hour = datetime.fromisoformat(e["event_timestamp"]).replace(minute=0, second=0)
        local = utc_hour.astimezone(zone)
        if (start and local.date() < start) or (end and local.date() > end):
            continue
        hours[(local.replace(tzinfo=None), e["event_name"])] += 1
        days[(local.date(), e["event_name"])] += 1
        grid[(local.isoweekday(), local.hour)] += 1
    return hours, days, grid


def expected_products(devices=None, sources=None) -> dict[str, dict]:
    out = {pid: defaultdict(float) for pid in PRODUCTS}
    for s in SESSIONS:
        if not _keep(s, devices, sources):
            continue
        for pid in s.views:
            out[pid]["views"] += 1
        for pid, qty in s.cart:
            out[pid]["add_to_carts"] += 1
            if s.purchase:
                out[pid]["purchases"] += qty
                out[pid]["orders"] += 1
                out[pid]["revenue"] += PRODUCTS[pid][3] * qty
    return {
        pid: {k: out[pid][k] for k in ("views", "add_to_carts", "purchases", "orders", "revenue")}
        for pid in out
    }


def expected_seconds_to_purchase() -> list[float]:
    """Seconds from a purchasing session's first event (its page view) to its purchase."""
    return sorted((len(session_events(s)) - 1) * 60.0 for s in SESSIONS if s.purchase)
