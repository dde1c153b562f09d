"""Segment's analytics.js 2.0 (``@segment/analytics-next`` from npm, installed by
scripts/node_deps.sh) in the demo storefront, in headless Chromium: loaded with its settings given
locally (no CDN) and our endpoint as its ``apiHost``, it sends a scripted shopper's calls from the
storefront's pages to ``python -m ingest serve``; one delivery answered 503 is retried by the SDK
with the same messageId. Loaded and built, the marts hold the hand-worked numbers. A wrong
write key stores nothing. The storefront's own tracker.js is told to wait for a consent
(``data-consent="required"``) that never comes, so it sends nothing."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from segment_testlib import WRITE_KEY, bucket_records, load_and_build

ROOT = Path(__file__).resolve().parents[2]
ANALYTICS_NEXT = ROOT / ".local" / "node" / "analytics-next" / "node_modules" / "@segment" / "analytics-next"
UMD = ANALYTICS_NEXT / "dist" / "umd"
SHOPPER_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36"
DOCUMENT = re.compile(r"^http://127\.0\.0\.1:\d+/([a-z]+\.html)?(\?.*)?$")

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def snippet(write_key: str, api_host: str) -> str:
    """What a shop puts in its pages: analytics.js and its settings, here given locally
    (cdnSettings) instead of fetched from Segment's CDN."""
    settings = {
        "integrations": {"Segment.io": {"apiKey": write_key, "apiHost": api_host, "protocol": "http"}}
    }
    return (
        '<script src="/vendor/analytics-next/index.js"></script>\n'
        "<script>window.analytics = AnalyticsNext.AnalyticsBrowser.load("
        f"{{writeKey: {json.dumps(write_key)}, cdnSettings: {json.dumps(settings)}}});</script>\n"
    )


def install_analytics(
    context, base: str, write_key: str, outside: list[str], fail_first: set[str]
) -> list[dict]:
    """Every storefront page gets the snippet; the SDK's files come from the npm package; any
    request leaving the machine is refused (and noted). A message whose event is in
    ``fail_first`` is stored but answered 503 the first time (the SDK retries it). Returns the
    list of the SDK's deliveries (path, status)."""
    if not (UMD / "index.js").exists():
        pytest.fail("analytics-next is not installed: run scripts/node_deps.sh (scripts/test.sh does)")
    host = base.removeprefix("http://")
    deliveries: list[dict] = []

    def page_with_snippet(route):
        response = route.fetch()
        # the storefront's own tracker waits for a consent that never comes: it sends nothing
        body = response.text().replace('data-consent="opt-out"', 'data-consent="required"')
        body = body.replace("</head>", snippet(write_key, f"{host}/v1") + "</head>", 1)
        route.fulfill(response=response, body=body)

    def sdk_file(route):
        name = route.request.url.rsplit("/", 1)[-1].split("?")[0]
        target = UMD / name
        if not target.is_file():
            route.fulfill(status=404, body="")
            return
        route.fulfill(status=200, body=target.read_bytes(), headers={"content-type": "text/javascript"})

    def delivery(route):
        response = route.fetch()
        message = json.loads(route.request.post_data or "{}")
        event = message.get("event")
        if event in fail_first:
            fail_first.discard(event)
            deliveries.append({"path": route.request.url, "status": 503, "event": event})
            route.fulfill(status=503, body='{"error":"storage unavailable"}')
            return
        deliveries.append({"path": route.request.url, "status": response.status, "event": event})
        route.fulfill(response=response)

    def outside_request(route):
        outside.append(route.request.url)
        route.abort()

    context.route(re.compile(r"^(?!http://127\.0\.0\.1:).*"), outside_request)
    context.route(DOCUMENT, page_with_snippet)
    context.route(re.compile(r".*/vendor/analytics-next/.*|.*/analytics-next/bundles/.*"), sdk_file)
    context.route(re.compile(r"^http://127\.0\.0\.1:\d+/v1/[tpib]$"), delivery)
    return deliveries


def goto(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_function("() => window.analytics && window.AnalyticsNext")


def call(page, expression: str) -> None:
    """Await one analytics.js call (it resolves once the SDK has delivered it)."""
    page.evaluate(f"async () => {{ await {expression}; }}")


def shop(page, base: str, product: dict, order_id: str) -> str:
    """The scripted shopper, as a shop's instrumentation would call analytics.js on each page:
    home, the category, the product (viewed, added twice), cart, checkout, the order, identify.
    Returns analytics.js's anonymousId."""
    fields = {
        "product_id": product["id"],
        "name": product["name"],
        "category": product["category"],
        "brand": product["brand"],
        "price": product["price"],
        "currency": "USD",
    }
    goto(page, f"{base}/?utm_source=newsletter&utm_medium=email&utm_campaign=winter")
    call(page, "analytics.page()")
    category = product["category"].split("/")[0]
    goto(page, f"{base}/category.html?c={category}")
    call(page, "analytics.page()")
    call(
        page,
        f"analytics.track('Product List Viewed', {json.dumps({'category': category, 'products': [fields]})})",
    )
    goto(page, f"{base}/product.html?id={product['id']}")
    call(page, "analytics.page()")
    call(page, f"analytics.track('Product Viewed', {json.dumps(fields)})")
    call(page, f"analytics.track('Product Added', {json.dumps({**fields, 'quantity': 2})})")
    goto(page, f"{base}/cart.html")
    call(page, "analytics.page()")
    call(page, f"analytics.track('Cart Viewed', {json.dumps({'products': [{**fields, 'quantity': 2}]})})")
    goto(page, f"{base}/checkout.html")
    call(page, "analytics.page()")
    revenue = round(product["price"] * 2, 2)
    checkout = {"value": revenue, "currency": "USD", "products": [{**fields, "quantity": 2}]}
    call(page, f"analytics.track('Checkout Started', {json.dumps(checkout)})")
    order = {
        "order_id": order_id,
        "revenue": revenue,
        "currency": "USD",
        "products": [{**fields, "quantity": 2}],
    }
    call(page, f"analytics.track('Order Completed', {json.dumps(order)})")
    call(page, "analytics.identify('user-web', {email: 'shopper@example.com'})")
    return page.evaluate("async () => (await analytics.user()).anonymousId()")


EXPECTED = Counter(
    page_view=5,
    category_view=1,
    product_view=1,
    add_to_cart=1,
    view_cart=1,
    checkout_start=1,
    purchase=1,
    identify=1,
)


def wait_for(read, expected: int, timeout: float = 20.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        events = read()
        if len(events) >= expected or time.monotonic() > deadline:
            return events
        time.sleep(0.25)


@pytest.fixture(scope="module")
def browser_warehouse(browser, segment_server, make_database, dbt):
    base, env = segment_server
    catalogue = json.loads(urllib.request.urlopen(f"{base}/api/catalogue", timeout=10).read())["products"]
    product = catalogue[0]
    outside: list[str] = []
    context = browser.new_context(user_agent=SHOPPER_UA)
    deliveries = install_analytics(context, base, WRITE_KEY, outside, fail_first={"Order Completed"})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        anonymous_id = shop(page, base, product, "ord-web-1")
        # the SDK retries the delivery answered 503 after its backoff
        deadline = time.monotonic() + 30
        while sum(d["event"] == "Order Completed" for d in deliveries) < 2 and time.monotonic() < deadline:
            page.wait_for_timeout(250)
    finally:
        context.close()

    def ours() -> list[dict]:
        return [e for e in bucket_records(env, "events/") if e["anonymous_id"] == anonymous_id]

    # the retried Order Completed is stored twice, under one event_id
    raw = wait_for(ours, sum(EXPECTED.values()) + 1)

    # a page with a wrong write key: every delivery refused with 401, nothing stored
    before = len(bucket_records(env, ""))
    wrong = browser.new_context(user_agent=SHOPPER_UA)
    wrong_deliveries = install_analytics(wrong, base, "not-our-write-key", outside, fail_first=set())
    wrong_page = wrong.new_page()
    try:
        goto(wrong_page, f"{base}/")
        wrong_page.evaluate("() => analytics.page()")
        wait_for(lambda: wrong_deliveries, 1, timeout=10)
    finally:
        wrong.close()
    after = len(bucket_records(env, ""))

    db = load_and_build(env, make_database, dbt, since=datetime.now(UTC) - timedelta(days=1))
    return {
        "raw": raw,
        "db": db,
        "anonymous_id": anonymous_id,
        "product": product,
        "deliveries": deliveries,
        "wrong_deliveries": wrong_deliveries,
        "outside": outside,
        "errors": errors,
        "stored_before_wrong_key": before,
        "stored_after_wrong_key": after,
    }


def test_analytics_js_posts_to_our_api_host_only(browser_warehouse):
    assert browser_warehouse["outside"] == []  # no CDN, no Segment API
    assert browser_warehouse["errors"] == []
    paths = Counter(d["path"].rsplit("/", 1)[-1] for d in browser_warehouse["deliveries"])
    assert paths == Counter(p=5, t=7, i=1)  # the retried track call twice
    assert [d["status"] for d in browser_warehouse["deliveries"] if d["event"] == "Order Completed"] == [
        503,
        200,
    ]


def test_every_call_lands_mapped(browser_warehouse):
    raw = browser_warehouse["raw"]
    assert Counter(e["event_name"] for e in raw) == EXPECTED + Counter(purchase=1)
    purchases = [e for e in raw if e["event_name"] == "purchase"]
    assert len({e["event_id"] for e in purchases}) == 1
    assert {e["device"]["type"] for e in raw} == {"desktop"}
    assert {e["device"]["browser"] for e in raw} == {"Chrome"}
    home = next(e for e in raw if e["event_name"] == "page_view" and e["page"]["path"] == "/")
    assert home["traffic"] == {"source": "newsletter", "medium": "email", "campaign": "winter"}
    assert home["page"]["title"]
    assert all("shopper@example.com" not in json.dumps(e) for e in raw)


def test_a_wrong_write_key_stores_nothing(browser_warehouse):
    assert {d["status"] for d in browser_warehouse["wrong_deliveries"]} == {401}
    assert browser_warehouse["stored_after_wrong_key"] == browser_warehouse["stored_before_wrong_key"]


def test_the_marts_hold_the_shopper(browser_warehouse):
    from warehouse import rawdata

    db, anonymous_id, product = (
        browser_warehouse["db"],
        browser_warehouse["anonymous_id"],
        browser_warehouse["product"],
    )
    counts = dict(
        rawdata.query(
            db,
            "select event_name, count(*) from analytics.fact_events where anonymous_id = %s group by 1",
            (anonymous_id,),
        )
    )
    assert Counter(counts) == EXPECTED
    revenue = round(product["price"] * 2, 2)
    sessions = rawdata.query(
        db,
        "select s.user_key, s.events, s.revenue::float, f.steps_reached, s.traffic_source, s.landing_page_path"
        " from analytics.fact_sessions as s join analytics.fact_funnels as f using (session_id)"
        " where s.anonymous_id = %s",
        (anonymous_id,),
    )
    assert sessions == [("user-web", 12, revenue, 5, "newsletter", "/")]
    items = rawdata.query(
        db,
        "select product_id, quantity, item_revenue::float from analytics.fact_order_items where order_id = %s",
        ("ord-web-1",),
    )
    assert items == [(product["id"], 2, revenue)]
