"""tracker.js and the storefront in headless Chromium against the local ingest server and the
test moto server: the events that land in the bucket, retries without duplicates, sessions,
traffic and device detection."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import boto3
import pytest
from ingest_testlib import free_port, wait_for_http

from ingest.validation import event_errors

ROOT = Path(__file__).resolve().parents[2]
DESKTOP_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36"
)
IPHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1"
)
IPAD_UA = (
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1"
)
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def shop(s3_endpoint, base_env, tmp_path_factory):
    """The local server (subprocess) with a bucket of its own: (base_url, read_events)."""
    bucket = f"raw-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name=base_env["AWS_REGION"])
    s3.create_bucket(Bucket=bucket)
    env = dict(base_env, AWS_ENDPOINT_URL=s3_endpoint, RAW_BUCKET=bucket)
    port = free_port()
    log_path = tmp_path_factory.mktemp("tracker") / "server.log"

    def read_events(prefix: str = "events/") -> list[dict]:
        events = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
                events.extend(json.loads(line) for line in body.splitlines() if line)
        return events

    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ingest", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_http(f"http://127.0.0.1:{port}/healthz")
            yield f"http://127.0.0.1:{port}", read_events
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def events_of(read_events, anonymous_id: str, expected: int, timeout: float = 15.0) -> list[dict]:
    """This visitor's stored events, once ``expected`` of them have arrived."""
    deadline = time.monotonic() + timeout
    while True:
        mine = [e for e in read_events() if e["anonymous_id"] == anonymous_id]
        if len(mine) >= expected or time.monotonic() > deadline:
            return sorted(mine, key=lambda e: e["event_timestamp"])
        time.sleep(0.25)


def goto(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")


@pytest.fixture
def context(browser):
    ctx = browser.new_context(user_agent=DESKTOP_UA)
    yield ctx
    ctx.close()


def test_storefront_pages_send_contract_events(context, shop):
    base, read_events = shop
    page = context.new_page()
    goto(page, f"{base}/?utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale")
    category_link = page.locator("[data-testid^=category-link-]").first
    category = category_link.inner_text()
    with page.expect_navigation():
        category_link.click()
    page.wait_for_selector("body[data-ready=true]")
    first_id = page.locator("[data-testid=category-products] li").first.get_attribute("data-product-id")

    page.fill("[data-testid=search-input]", "samsung")
    with page.expect_navigation():
        page.click("[data-testid=search-submit]")
    page.wait_for_selector("body[data-ready=true]")
    results = int(page.inner_text("[data-testid=results-count]").split()[0])

    goto(page, f"{base}/product.html?id={first_id}")
    page.click("[data-testid=add-to-cart]")
    goto(page, f"{base}/cart.html")
    page.fill(f"[data-testid=cart-qty-{first_id}]", "3")
    page.dispatch_event(f"[data-testid=cart-qty-{first_id}]", "change")
    goto(page, f"{base}/signin.html")
    page.fill("[data-testid=signin-user]", "user-42")
    with page.expect_navigation():
        page.click("[data-testid=signin-submit]")
    page.wait_for_selector("[data-testid=signed-in-user]")
    page.evaluate("() => window.clickstream.flush()")
    anonymous_id = page.evaluate("() => window.clickstream.anonymousId()")

    # home, category, search, product, cart, sign-in, home again
    expected = Counter(page_view=7, category_view=1, search=1, product_view=1, add_to_cart=1)
    expected.update(update_cart_quantity=1, sign_in=1)
    events = events_of(read_events, anonymous_id, sum(expected.values()))
    assert Counter(e["event_name"] for e in events) == expected
    for event in events:
        assert event_errors(event) == [], event
        assert UUID_RE.match(event["event_id"])
        assert event["traffic"]["source"] == "newsletter" and event["traffic"]["campaign"] == "spring_sale"
        assert event["device"]["type"] == "desktop"
        assert event["page"]["url"].startswith(base)
    assert len({e["session_id"] for e in events}) == 1
    by_name = {e["event_name"]: e for e in events}
    assert by_name["category_view"]["properties"]["category"] == category
    assert by_name["search"]["search"] == {"query": "samsung", "results_count": results}
    update = by_name["update_cart_quantity"]
    assert update["product"]["id"] == first_id and update["quantity"] == 3
    assert update["cart"]["value"] == pytest.approx(3 * update["product"]["price"])
    assert by_name["sign_in"]["user_id"] == "user-42"
    signed_in = [e for e in events if e["user_id"] == "user-42"]
    assert sorted(e["event_name"] for e in signed_in) == ["page_view", "sign_in"]  # sign-in, then home
    assert all(e["user_id"] is None for e in events if e not in signed_in)
    assert read_events("rejected/") == []


def test_failed_sends_are_retried_with_the_same_event_ids(context, shop):
    base, read_events = shop
    page = context.new_page()
    goto(page, f"{base}/signin.html")
    attempts: list[list[str]] = []

    def fail(route):
        attempts.append([e["event_id"] for e in json.loads(route.request.post_data)])
        route.fulfill(status=503, body='{"error": "unavailable"}')

    page.route("**/events", fail)
    ids = page.evaluate(
        "() => [1, 2, 3].map(i => window.clickstream.track('retry_probe', {properties: {i}}))"
    )
    first = page.evaluate("() => window.clickstream.flush()")
    assert first["pending"] >= 3
    stored_queue = json.loads(page.evaluate("() => localStorage.getItem('cs_queue')"))
    assert set(ids) <= {e["event_id"] for e in stored_queue}

    page.unroute("**/events")
    second = page.evaluate("() => window.clickstream.flush()")
    assert second["pending"] == 0
    anonymous_id = page.evaluate("() => window.clickstream.anonymousId()")

    events = events_of(read_events, anonymous_id, 4)
    probes = [e for e in events if e["event_name"] == "retry_probe"]
    assert sorted(e["event_id"] for e in probes) == sorted(ids)  # each once, with its original id
    assert any(set(ids) <= set(a) for a in attempts)  # the failed request carried the same ids
    assert page.evaluate("() => localStorage.getItem('cs_queue')") is None


def test_unsent_queue_survives_in_local_storage_for_the_next_page(context, shop):
    base, read_events = shop
    blocked = context.new_page()
    goto(blocked, f"{base}/signin.html")
    blocked.route("**/events", lambda route: route.abort())
    blocked.evaluate("() => window.clickstream.flush()")  # the page_view fails
    event_id = blocked.evaluate("() => window.clickstream.track('offline_probe')")
    blocked.evaluate("() => window.clickstream.flush()")
    assert blocked.evaluate("() => window.clickstream.queued()") == 2

    later = context.new_page()  # same origin, same localStorage; no network trouble
    goto(later, f"{base}/signin.html")
    later.evaluate("() => window.clickstream.flush()")
    anonymous_id = later.evaluate("() => window.clickstream.anonymousId()")
    events = events_of(read_events, anonymous_id, 3)
    assert [e["event_id"] for e in events].count(event_id) == 1
    assert sorted(e["event_name"] for e in events) == ["offline_probe", "page_view", "page_view"]


def test_session_renews_after_30_minutes_of_inactivity(context, shop):
    base, _ = shop
    page = context.new_page()
    goto(page, f"{base}/signin.html")
    first = page.evaluate("() => window.clickstream.sessionId()")
    page.evaluate("() => window.clickstream.track('ping')")
    assert page.evaluate("() => window.clickstream.sessionId()") == first
    page.evaluate(
        """() => {
            const s = JSON.parse(localStorage.getItem('cs_session'));
            s.last = Date.now() - 31 * 60 * 1000;
            localStorage.setItem('cs_session', JSON.stringify(s));
        }"""
    )
    page.evaluate("() => window.clickstream.track('ping')")
    second = page.evaluate("() => window.clickstream.sessionId()")
    assert second and second != first
    # the anonymous id is a first-party cookie, mirrored in localStorage
    cookies = {c["name"]: c["value"] for c in context.cookies()}
    assert cookies["cs_aid"] == page.evaluate("() => window.clickstream.anonymousId()")
    page.evaluate("() => window.clickstream.flush()")


@pytest.mark.parametrize(
    ("user_agent", "viewport", "device_type"),
    [
        (IPHONE_UA, {"width": 390, "height": 844}, "mobile"),
        (IPAD_UA, {"width": 820, "height": 1180}, "tablet"),
    ],
)
def test_device_type_and_referrer_traffic(browser, shop, user_agent, viewport, device_type):
    base, read_events = shop
    context = browser.new_context(user_agent=user_agent, viewport=viewport)
    try:
        page = context.new_page()
        page.set_extra_http_headers({"referer": "https://www.google.com/"})
        goto(page, f"{base}/")
        page.evaluate("() => window.clickstream.flush()")
        anonymous_id = page.evaluate("() => window.clickstream.anonymousId()")
    finally:
        context.close()
    [event] = events_of(read_events, anonymous_id, 1)
    assert event["device"]["type"] == device_type
    assert event["traffic"]["source"] == "google.com" and event["traffic"]["medium"] == "organic"


def test_uuid_fallback_without_crypto_random_uuid(browser, shop):
    base, read_events = shop
    context = browser.new_context(user_agent=DESKTOP_UA)
    context.add_init_script("delete Crypto.prototype.randomUUID;")
    try:
        page = context.new_page()
        goto(page, f"{base}/")
        assert page.evaluate("() => typeof crypto.randomUUID") == "undefined"
        ids = page.evaluate("() => Array.from({length: 50}, () => window.clickstream.uuid())")
        page.evaluate("() => window.clickstream.flush()")
        anonymous_id = page.evaluate("() => window.clickstream.anonymousId()")
    finally:
        context.close()
    assert len(set(ids)) == 50 and all(UUID_RE.match(i) for i in ids)
    [event] = events_of(read_events, anonymous_id, 1)
    assert UUID_RE.match(event["event_id"]) and UUID_RE.match(anonymous_id)
