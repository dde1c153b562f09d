"""Raw events for the warehouse tests: contract-shaped event dicts, written straight into
raw.clickstream_events (as the loader would), with full control over every field."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import psycopg2
import psycopg2.extras

from loader.schema import migrate

BASE_TIME = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
)
BOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

PRODUCTS = {
    "p-1": {"id": "p-1", "name": "Trail Shoe", "category": "shoes", "brand": "Peak", "price": 89.9},
    "p-2": {"id": "p-2", "name": "Rain Jacket", "category": "outerwear", "brand": "Nimbus", "price": 129.0},
    "p-3": {"id": "p-3", "name": "Wool Socks", "category": "accessories", "brand": "Peak", "price": 12.5},
    "p-4": {"id": "p-4", "name": "Day Pack", "category": "bags", "brand": "Carry", "price": 59.0},
}


def ts(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def event(
    name: str,
    at: datetime,
    *,
    session_id: str,
    anonymous_id: str,
    user_id: str | None = None,
    event_id: str | None = None,
    device_type: str = "desktop",
    user_agent: str = BROWSER_UA,
    source: str = "google",
    product: str | None = None,
    quantity: int | None = None,
    order: dict | None = None,
    received_at: datetime | None = None,
    path: str = "/",
    **extra,
) -> dict:
    """One contract-v1 event."""
    payload: dict = {
        "event_id": event_id or str(uuid.uuid4()),
        "event_name": name,
        "event_timestamp": ts(at),
        "received_at": ts(received_at or at + timedelta(seconds=1)),
        "anonymous_id": anonymous_id,
        "session_id": session_id,
        "schema_version": "1",
        "page": {"url": f"https://shop.example{path}", "path": path, "title": "Shop", "referrer": None},
        "device": {"type": device_type, "user_agent": user_agent, "os": "Linux", "browser": "Chrome"},
        "traffic": {"source": source, "medium": "organic", "campaign": None},
    }
    if user_id is not None:
        payload["user_id"] = user_id
    if product is not None:
        payload["product"] = dict(PRODUCTS[product]) if isinstance(product, str) else product
    if quantity is not None:
        payload["quantity"] = quantity
    if order is not None:
        payload["order"] = order
    payload.update(extra)
    return payload


def order_payload(order_id: str, items: list[tuple[str, int]]) -> dict:
    lines = [
        {
            "product_id": pid,
            "name": PRODUCTS[pid]["name"],
            "category": PRODUCTS[pid]["category"],
            "brand": PRODUCTS[pid]["brand"],
            "price": PRODUCTS[pid]["price"],
            "quantity": qty,
        }
        for pid, qty in items
    ]
    revenue = round(sum(line["price"] * line["quantity"] for line in lines), 2)
    return {"order_id": order_id, "revenue": revenue, "currency": "EUR", "items": lines}


def connect(env: dict[str, str]):
    return psycopg2.connect(
        host=env["PGHOST"],
        port=env["PGPORT"],
        user=env["PGUSER"],
        password=env["PGPASSWORD"],
        dbname=env["PGDATABASE"],
    )


def create_raw_schema(env: dict[str, str]) -> None:
    conn = connect(env)
    try:
        migrate(conn)
    finally:
        conn.close()


def insert_raw(
    env: dict[str, str],
    payloads: Iterable[dict | str],
    *,
    loaded_at: datetime | None = None,
    object_key: str | None = None,
) -> int:
    """Write events (dicts, or raw JSON text for malformed cases) as one loaded object."""
    key = object_key or f"events/2026/03/02/09/{uuid.uuid4().hex}.json"
    load_id = str(uuid.uuid4())
    rows = []
    for number, payload in enumerate(payloads, start=1):
        text = payload if isinstance(payload, str) else json.dumps(payload)
        rows.append(
            (text, "test-raw", key, number, "etag-" + key[-8:], load_id, loaded_at or datetime.now(UTC))
        )
    conn = connect(env)
    try:
        with conn.cursor() as cur:
            psycopg2.extras.execute_values(
                cur,
                "insert into raw.clickstream_events"
                " (payload, bucket, object_key, line_number, object_etag, load_id, loaded_at)"
                " values %s",
                rows,
                template="(%s::jsonb, %s, %s, %s, %s, %s, %s)",
            )
        conn.commit()
    finally:
        conn.close()
    return len(rows)


def query(env: dict[str, str], sql: str, params: tuple = ()) -> list[tuple]:
    conn = connect(env)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


def shop_traffic(sessions: int, seed: int = 7, start: datetime = BASE_TIME) -> list[dict]:
    """Plausible shop sessions: browse, view products, add to cart, sometimes buy; some
    visitors sign in mid-session. Deterministic for a seed."""
    rng = random.Random(seed)
    visitors = [f"anon-{seed}-{n}" for n in range(max(2, sessions // 2))]
    events: list[dict] = []
    for number in range(sessions):
        events.extend(
            _shop_session(rng, f"s-{seed}-{number}", rng.choice(visitors), f"o-{seed}-{number}", start)
        )
    return events


def _shop_session(rng: random.Random, session_id: str, anonymous_id: str, order_id: str, start: datetime):
    at = start + timedelta(minutes=rng.randrange(0, 60 * 24))
    common = {
        "session_id": session_id,
        "anonymous_id": anonymous_id,
        "device_type": rng.choice(["desktop", "mobile", "tablet"]),
        "source": rng.choice(["google", "newsletter", None]),
    }
    user_id = f"user-{anonymous_id}" if rng.random() < 0.3 else None
    steps: list[tuple[str, dict]] = [("page_view", {"path": "/"})]
    for _ in range(rng.randrange(0, 4)):
        steps.append(("product_view", {"product": rng.choice(list(PRODUCTS)), "path": "/product"}))
    if rng.random() < 0.2:
        steps.append(("search", {"search": {"query": "jacket", "results_count": 3}}))
    cart: list[tuple[str, int]] = []
    if rng.random() < 0.5:
        pid, qty = rng.choice(list(PRODUCTS)), rng.randrange(1, 3)
        steps.append(("add_to_cart", {"product": pid, "quantity": qty}))
        cart.append((pid, qty))
    signed_in_from = len(steps) if user_id and rng.random() < 0.8 else None
    if signed_in_from is not None:
        steps.append(("sign_in", {}))
    if cart and rng.random() < 0.6:
        steps.append(("checkout_start", {}))
        if rng.random() < 0.7:
            steps.append(("purchase", {"order": order_payload(order_id, cart)}))
    events = []
    for index, (name, fields) in enumerate(steps):
        at += timedelta(seconds=rng.randrange(1, 90))
        signed_in = signed_in_from is not None and index >= signed_in_from
        events.append(event(name, at, user_id=user_id if signed_in else None, **common, **fields))
    return events
