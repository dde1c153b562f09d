"""The whole path of a shopper's clicks: headless Chromium walks the demo storefront served by
``python -m ingest serve`` (tracker.js -> POST /events -> the test moto server), then the ETL
(``python -m loader load --no-build`` and ``dbt build``) turns the raw files into
``analytics.fact_events``, which must hold exactly the events of the walk."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
# a regular desktop Chrome: the warehouse leaves headless/bot user agents out of fact_events
SHOPPER_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36"
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no HTTP answer from {url} after {timeout}s") from None
            time.sleep(0.1)


@pytest.fixture
def ingest_server(s3_env, tmp_path):
    """``python -m ingest serve`` on a free loopback port, writing to the test bucket."""
    port = free_port()
    env = dict(s3_env)
    env.pop("INGEST_PORT", None)
    log_path = tmp_path / "ingest-server.log"
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
            yield f"http://127.0.0.1:{port}", log_path
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def stored_events(env: dict[str, str], prefix: str) -> list[dict]:
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_REGION"])
    events = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=env["RAW_BUCKET"], Prefix=prefix):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=env["RAW_BUCKET"], Key=item["Key"])["Body"].read().decode()
            events.extend(json.loads(line) for line in body.splitlines() if line)
    return events


def wait_for_stored(env: dict[str, str], expected: int, timeout: float = 20.0) -> list[dict]:
    """The events in the bucket once ``expected`` of them have arrived (beacons are asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        events = stored_events(env, "events/")
        if len(events) >= expected or time.monotonic() > deadline:
            return events
        time.sleep(0.25)


def open_page(page, action) -> None:
    """Run an action that navigates, and wait until the new page has rendered."""
    with page.expect_navigation():
        action()
    page.wait_for_selector("body[data-ready=true]")


def test_shopper_walk_reaches_fact_events(browser, ingest_server, s3_env, fresh_db, dbt):
    base, server_log = ingest_server
    catalogue = json.loads(urllib.request.urlopen(f"{base}/api/catalogue", timeout=10).read())["products"]
    featured = catalogue[:12]
    viewed = [featured[0], featured[1], featured[2]]
    kept, removed = viewed[1], viewed[2]

    context = browser.new_context(user_agent=SHOPPER_USER_AGENT, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    try:
        open_page(page, lambda: page.goto(f"{base}/"))
        # three product pages, from the home page's product list
        for product in viewed:
            if page.url.rstrip("/") != base:
                open_page(page, lambda: page.click("[data-testid=home-link]"))
            open_page(page, lambda p=product: page.click(f"[data-testid=product-link-{p['id']}]"))
            assert page.inner_text("[data-testid=product-name]") == product["name"]
            if product in (kept, removed):
                page.fill("[data-testid=quantity-input]", "2" if product is removed else "1")
                page.click("[data-testid=add-to-cart]")
                page.wait_for_selector("[data-testid=cart-message]:has-text('Added')")
        assert page.inner_text("[data-testid=cart-count]") == "3"

        open_page(page, lambda: page.click("[data-testid=cart-link]"))
        page.click(f"[data-testid=remove-{removed['id']}]")
        page.wait_for_selector(f"[data-testid=cart-item-{removed['id']}]", state="detached")
        assert page.inner_text("[data-testid=cart-count]") == "1"

        open_page(page, lambda: page.click("[data-testid=checkout-button]"))
        page.fill("[data-testid=checkout-email]", "shopper@example.com")
        open_page(page, lambda: page.click("[data-testid=place-order]"))
        order_id = page.inner_text("[data-testid=order-id]")
        assert order_id.startswith("ord-")

        result = page.evaluate("() => window.clickstream.flush()")
        assert result["pending"] == 0
        anonymous_id = page.evaluate("() => window.clickstream.anonymousId()")
    finally:
        context.close()
    assert not console_errors, console_errors

    # home, 3 x (product [+ home before the next one]), cart, checkout, confirmation
    expected = Counter(
        page_view=1 + 3 + 2 + 1 + 1 + 1,
        product_view=3,
        add_to_cart=2,
        remove_from_cart=1,
        checkout_start=1,
        purchase=1,
    )
    raw = wait_for_stored(s3_env, sum(expected.values()))
    assert Counter(e["event_name"] for e in raw) == expected, server_log.read_text()[-3000:]
    assert len({e["event_id"] for e in raw}) == len(raw)
    assert stored_events(s3_env, "rejected/") == []
    assert {e["anonymous_id"] for e in raw} == {anonymous_id}
    assert len({e["session_id"] for e in raw}) == 1
    assert {e["device"]["type"] for e in raw} == {"desktop"}

    env = dict(fresh_db)
    for name in (
        "AWS_ENDPOINT_URL",
        "RAW_BUCKET",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
    ):
        env[name] = s3_env[name]
    since = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    load = subprocess.run(
        [
            sys.executable,
            "-m",
            "loader",
            "load",
            "--source",
            f"s3://{s3_env['RAW_BUCKET']}/events/",
            "--since",
            since,
            "--no-build",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert load.returncode == 0, load.stdout[-3000:] + load.stderr[-3000:]
    dbt(env, "build")

    import psycopg2

    with (
        psycopg2.connect(
            host=env["PGHOST"],
            port=env["PGPORT"],
            user=env["PGUSER"],
            password=env["PGPASSWORD"],
            dbname=env["PGDATABASE"],
        ) as conn,
        conn.cursor() as cur,
    ):
        cur.execute(
            "select event_name, product_id, quantity, order_id, order_revenue, anonymous_id, device_type"
            " from analytics.fact_events order by event_at"
        )
        rows = cur.fetchall()
    conn.close()

    assert Counter(r[0] for r in rows) == expected
    by_name: dict[str, list[tuple]] = {}
    for row in rows:
        by_name.setdefault(row[0], []).append(row)
    assert [r[1] for r in by_name["product_view"]] == [p["id"] for p in viewed]
    assert sorted((r[1], r[2]) for r in by_name["add_to_cart"]) == sorted(
        [(kept["id"], 1), (removed["id"], 2)]
    )
    assert [(r[1], r[2]) for r in by_name["remove_from_cart"]] == [(removed["id"], 2)]
    [purchase] = by_name["purchase"]
    assert purchase[3] == order_id
    assert float(purchase[4]) == pytest.approx(kept["price"])
    assert {r[5] for r in rows} == {anonymous_id}
    assert {r[6] for r in rows} == {"desktop"}
