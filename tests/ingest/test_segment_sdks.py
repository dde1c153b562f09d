"""The real server-side clients, ``segment-analytics-python`` and ``rudder-sdk-python``, pointed at
``python -m ingest serve``: each sends a scripted shopper (two visits an hour apart: views, adds,
checkout, order, identify, one message retried), then the loader and ``dbt build`` make the
marts, checked against numbers worked out by hand. A client with a wrong write key stores
nothing."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from segment_testlib import WRITE_KEY, bucket_records, load_and_build

ROOT = Path(__file__).resolve().parents[2]
SHOPPER_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"

pytestmark = pytest.mark.slow


def make_client(sdk: str, write_key: str, host: str, errors: list):
    def on_error(error, items):
        errors.append((getattr(error, "status", None), len(items)))

    if sdk == "segment":
        from segment.analytics import Client

        return Client(write_key=write_key, host=host, on_error=on_error, max_retries=1, upload_interval=0.1)
    from rudderstack.analytics import Client

    return Client(write_key=write_key, host=host, on_error=on_error, max_retries=1, upload_interval=0.1)


def shop(client, anonymous_id: str, user_id: str, order_id: str, start: datetime) -> None:
    """The scripted shopper. Visit 1 at ``start``: home, a category, two products, adds p1 twice
    (Product Viewed of p1 is retried with the same messageId). Visit 2 an hour later: home, p2
    viewed and added, cart, checkout, the order (p1 x2 at 100, p2 at 50: 250 USD), identify."""
    context = {
        "userAgent": SHOPPER_UA,
        "ip": "198.51.100.77",
        "campaign": {"source": "news", "medium": "email", "name": "xmas"},
    }
    products = [
        {"product_id": "p1", "name": "Phone", "category": "electronics", "brand": "Acme", "price": 100.0},
        {"product_id": "p2", "name": "Case", "category": "electronics", "brand": "Acme", "price": 50.0},
    ]

    def at(minutes: float) -> datetime:
        return start + timedelta(minutes=minutes)

    def track(event, properties, minutes, **kwargs):
        client.track(
            anonymous_id=anonymous_id,
            event=event,
            properties=properties,
            context=context,
            timestamp=at(minutes),
            **kwargs,
        )

    home = {"url": "https://shop.example.com/?utm_source=news", "path": "/", "title": "Home"}
    client.page(anonymous_id=anonymous_id, name="Home", properties=home, context=context, timestamp=at(0))
    track("Product List Viewed", {"category": "electronics", "products": products}, 1)
    retried = str(uuid.uuid4())
    track("Product Viewed", products[0], 2, message_id=retried)
    track("Product Viewed", products[0], 2, message_id=retried)  # the SDK's retry: same messageId
    track("Product Viewed", products[1], 3)
    track("Product Added", {**products[0], "quantity": 2, "cart_id": "c-1"}, 4)
    # an hour later: a new session
    client.page(anonymous_id=anonymous_id, name="Home", properties=home, context=context, timestamp=at(64))
    track("Product Viewed", products[1], 65)
    track("Product Added", {**products[1], "quantity": 1, "cart_id": "c-1"}, 66)
    track("Cart Viewed", {"cart_id": "c-1", "products": products}, 67)
    track("Checkout Started", {"value": 250.0, "currency": "USD", "products": products}, 68)
    order = [{**products[0], "quantity": 2}, {**products[1], "quantity": 1}]
    track(
        "Order Completed", {"order_id": order_id, "revenue": 250.0, "currency": "USD", "products": order}, 69
    )
    client.identify(
        user_id=user_id,
        anonymous_id=anonymous_id,
        traits={"email": "shopper@example.com"},
        context=context,
        timestamp=at(70),
    )
    client.flush()


EXPECTED_RAW = Counter(
    page_view=2,
    category_view=1,
    product_view=4,
    add_to_cart=2,
    view_cart=1,
    checkout_start=1,
    purchase=1,
    identify=1,
)
EXPECTED_EVENTS = EXPECTED_RAW - Counter(product_view=1)  # the retry counts once


@pytest.fixture(scope="module")
def sdk_warehouse(segment_server, make_database, dbt):
    """Both SDKs' shoppers sent (and a wrong-key client), loaded and built."""
    base, env = segment_server
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    errors: dict[str, list] = {}
    for sdk in ("segment", "rudderstack"):
        errors[sdk] = []
        client = make_client(sdk, WRITE_KEY, base, errors[sdk])
        shop(client, f"anon-{sdk}", f"user-{sdk}", f"o-{sdk}", start)
        client.shutdown()
    before = len(bucket_records(env, ""))
    for sdk in ("segment", "rudderstack"):
        errors[f"{sdk}-wrong-key"] = []
        client = make_client(sdk, "not-our-key-0000", base, errors[f"{sdk}-wrong-key"])
        client.track(anonymous_id="anon-intruder", event="Product Viewed", properties={"product_id": "p1"})
        client.flush()
        client.shutdown()
    after = len(bucket_records(env, ""))

    db = load_and_build(env, make_database, dbt, since=start - timedelta(days=1))
    return {"env": env, "db": db, "errors": errors, "before": before, "after": after}


def query(db: dict[str, str], sql: str, params: tuple = ()) -> list[tuple]:
    from warehouse import rawdata

    return rawdata.query(db, sql, params)


@pytest.mark.parametrize("sdk", ["segment", "rudderstack"])
def test_the_sdk_lands_every_message_in_the_bucket(sdk_warehouse, sdk):
    raw = [e for e in bucket_records(sdk_warehouse["env"], "events/") if e["anonymous_id"] == f"anon-{sdk}"]
    assert Counter(e["event_name"] for e in raw) == EXPECTED_RAW
    assert len({e["event_id"] for e in raw}) == len(raw) - 1  # the retried message: one event_id
    assert sdk_warehouse["errors"][sdk] == []
    assert {e["device"]["type"] for e in raw} == {"mobile"}
    assert {e["properties"]["client_ip_prefix"] for e in raw} == {"198.51.100.0/24"}
    assert all("shopper@example.com" not in str(e) for e in raw)
    assert bucket_records(sdk_warehouse["env"], "rejected/") == []


def test_a_wrong_write_key_stores_nothing(sdk_warehouse):
    assert sdk_warehouse["after"] == sdk_warehouse["before"]
    for sdk in ("segment", "rudderstack"):
        assert sdk_warehouse["errors"][f"{sdk}-wrong-key"] == [(401, 1)]


@pytest.mark.parametrize("sdk", ["segment", "rudderstack"])
def test_the_marts_hold_the_shopper(sdk_warehouse, sdk):
    db, user = sdk_warehouse["db"], f"user-{sdk}"
    counts = dict(
        query(
            db,
            "select event_name, count(*) from analytics.fact_events where anonymous_id = %s group by 1",
            (f"anon-{sdk}",),
        )
    )
    assert Counter(counts) == EXPECTED_EVENTS
    # stitched: every event of the visitor belongs to the user identified at the end
    assert query(
        db, "select distinct user_key from analytics.fact_events where anonymous_id = %s", (f"anon-{sdk}",)
    ) == [(user,)]
    # two visits an hour apart: two sessions; the funnel: visit 1 reaches add_to_cart, visit 2 buys
    sessions = query(
        db,
        "select s.events, s.page_views, s.revenue::float, f.steps_reached, s.traffic_source, s.device_type"
        " from analytics.fact_sessions as s join analytics.fact_funnels as f using (session_id)"
        " where s.user_key = %s order by s.session_start_at",
        (user,),
    )
    assert sessions == [(5, 1, 0.0, 3, "news", "mobile"), (7, 1, 250.0, 5, "news", "mobile")]
    items = query(
        db,
        "select product_id, quantity, item_revenue::float from analytics.fact_order_items where order_id = %s"
        " order by product_id",
        (f"o-{sdk}",),
    )
    assert items == [("p1", 2, 200.0), ("p2", 1, 50.0)]
    assert query(
        db,
        "select sessions, orders, revenue::float, segment from analytics.dim_users where user_key = %s",
        (user,),
    ) == [(2, 1, 250.0, "buyer")]
