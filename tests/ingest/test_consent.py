"""Consent, Global Privacy Control and Do Not Track in tracker.js, through the demo storefront in
headless Chromium, against the local ingest server and the test moto server: what leaves the
page, what the browser keeps, and what lands in the bucket."""

from __future__ import annotations

import re
import time

import pytest
from test_tracker import DESKTOP_UA, goto, shop  # noqa: F401 - the module's server fixture

pytestmark = pytest.mark.browser

DOCUMENT = re.compile(r"^http://127\.0\.0\.1:\d+/([a-z]+\.html)?(\?.*)?$")


def configure(context, consent: str, cookieless: str = "off") -> None:
    """The shop's choice of tracker settings: its pages' script tag, rewritten as they are served."""

    def rewrite(route):
        response = route.fetch()
        body = response.text().replace(
            'data-consent="opt-out"', f'data-consent="{consent}" data-cookieless="{cookieless}"'
        )
        route.fulfill(response=response, body=body)

    context.route(DOCUMENT, rewrite)


def watch_sends(page) -> list[str]:
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url) if request.url.endswith("/events") else None)
    return sent


def stored_in_browser(context, page) -> dict:
    return {
        "cookies": [c["name"] for c in context.cookies()],
        "local": page.evaluate("() => Object.keys(localStorage).sort()"),
        "session": page.evaluate("() => Object.keys(sessionStorage).sort()"),
    }


def arrived(read_events, event_ids: set[str], timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in read_events() if e["event_id"] in event_ids]
        if len(found) >= len(event_ids) or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


@pytest.fixture
def context(browser):
    ctx = browser.new_context(user_agent=DESKTOP_UA)
    yield ctx
    ctx.close()


def test_required_sends_and_stores_nothing_until_granted(context, shop):  # noqa: F811
    base, read_events = shop
    configure(context, "required")
    page = context.new_page()
    sent = watch_sends(page)
    goto(page, f"{base}/")
    product_id = page.locator("[data-product-id]").first.get_attribute("data-product-id")
    goto(page, f"{base}/product.html?id={product_id}")
    tracked = page.evaluate("() => window.clickstream.track('consent_probe')")
    page.evaluate("() => window.clickstream.flush()")
    page.wait_for_timeout(1500)
    assert sent == [], "no request leaves the page before consent"
    assert stored_in_browser(context, page) == {"cookies": [], "local": [], "session": []}
    assert page.evaluate("() => window.clickstream.mode()") == "hold"
    assert page.is_visible("[data-testid=consent-banner]")

    page.click("[data-testid=consent-accept]")
    page.evaluate("() => window.clickstream.flush()")
    anonymous_id = page.evaluate("() => window.clickstream.anonymousId()")
    events = [e for e in arrived(read_events, {tracked}) if e["anonymous_id"] == anonymous_id]
    assert [e["event_name"] for e in events] == ["consent_probe"]
    mine = [e for e in read_events() if e["anonymous_id"] == anonymous_id]
    # the product page's view and page view waited in memory and went once granted; the home
    # page's went with that page, never sent
    assert sorted(e["event_name"] for e in mine) == ["consent_probe", "page_view", "product_view"]
    assert all(e["page"]["path"] == "/product.html" for e in mine)
    kept = stored_in_browser(context, page)
    assert "cs_aid" in kept["cookies"] and "cs_consent" in kept["local"] and "cs_aid" in kept["local"]
    assert not page.is_visible("[data-testid=consent-banner]")


def test_required_and_denied_never_sends(context, shop):  # noqa: F811
    base, read_events = shop
    configure(context, "required")
    page = context.new_page()
    sent = watch_sends(page)
    goto(page, f"{base}/")
    tracked = page.evaluate("() => window.clickstream.track('denied_probe')")
    page.click("[data-testid=consent-decline]")
    goto(page, f"{base}/search.html?q=tv")
    page.evaluate("() => [window.clickstream.track('after_denial'), window.clickstream.flush()]")
    page.wait_for_timeout(1500)
    assert sent == []
    assert stored_in_browser(context, page) == {"cookies": [], "local": ["cs_consent"], "session": []}
    assert page.evaluate("() => [window.clickstream.consentState(), window.clickstream.mode()]") == [
        "denied",
        "off",
    ]
    assert not page.is_visible("[data-testid=consent-banner]"), "the choice is kept"
    assert [e for e in read_events() if e["event_id"] == tracked] == []


def test_denied_with_cookieless_counting(context, shop):  # noqa: F811
    base, read_events = shop
    configure(context, "required", cookieless="denied")
    page = context.new_page()
    goto(page, f"{base}/")
    page.click("[data-testid=consent-decline]")
    tracked = page.evaluate("() => window.clickstream.track('cookieless_probe')")
    page.evaluate("() => window.clickstream.flush()")
    [event] = arrived(read_events, {tracked})
    assert event["anonymous_id"].startswith("cl-") and event["properties"]["privacy_mode"] == "cookieless"
    assert "user_id" not in event
    assert stored_in_browser(context, page) == {"cookies": [], "local": ["cs_consent"], "session": []}


@pytest.mark.parametrize(
    "signal",
    [
        "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})",
        "Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'})",
    ],
    ids=["gpc", "dnt"],
)
def test_a_browser_signal_means_cookieless_events_only(browser, shop, signal):  # noqa: F811
    base, read_events = shop
    context = browser.new_context(user_agent=DESKTOP_UA)
    try:
        context.add_init_script(signal)
        page = context.new_page()
        goto(page, f"{base}/")
        assert not page.is_visible("[data-testid=consent-banner]")
        tracked = page.evaluate("() => window.clickstream.track('signal_probe')")
        page.evaluate("() => window.clickstream.flush()")
        [event] = arrived(read_events, {tracked})
        assert event["anonymous_id"].startswith("cl-") and event["session_id"].startswith("cl-")
        assert event["properties"] == {"privacy_mode": "cookieless"}
        kept = stored_in_browser(context, page)
        assert not [k for k in kept["local"] if k.startswith("cs_")] and "cs_aid" not in kept["cookies"]
    finally:
        context.close()


def test_opt_out_tracks_until_the_visitor_declines_and_then_forgets_them(context, shop):  # noqa: F811
    base, read_events = shop
    page = context.new_page()
    goto(page, f"{base}/")  # the storefront's own setting: opt-out
    first = page.evaluate("() => window.clickstream.track('before_decline')")
    page.evaluate("() => window.clickstream.flush()")
    assert len(arrived(read_events, {first})) == 1
    assert "cs_aid" in stored_in_browser(context, page)["cookies"]
    page.click("[data-testid=consent-decline]")
    sent = watch_sends(page)
    goto(page, f"{base}/cart.html")
    page.evaluate("() => [window.clickstream.track('after_decline'), window.clickstream.flush()]")
    page.wait_for_timeout(1000)
    assert sent == []
    kept = stored_in_browser(context, page)
    assert "cs_aid" not in kept["cookies"] and [k for k in kept["local"] if k.startswith("cs_")] == [
        "cs_consent"
    ]
