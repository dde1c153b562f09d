"""The Segment / RudderStack HTTP Tracking API at the Lambda handler (ingest/segment.py): routes,
write keys, gzip and text/plain bodies, Segment's limits, and each message mapped onto the
contract as it lands in the bucket (objects read back from the test moto server)."""

from __future__ import annotations

import base64
import gzip
import json
import uuid

import pytest
from ingest_testlib import api_gateway_event, ndjson_records

WRITE_KEY = "wk-test-0123456789"
AUTH = {"authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Mobile/15E148 Safari/604.1"
)


@pytest.fixture
def segment_env(ingest_env, monkeypatch):
    from ingest.settings import get_settings

    monkeypatch.setenv("INGEST_WRITE_KEYS", f"another-key-42,{WRITE_KEY}")
    get_settings.cache_clear()
    yield ingest_env
    get_settings.cache_clear()


def message(**overrides):
    msg = {
        "type": "track",
        "event": "Product Viewed",
        "messageId": str(uuid.uuid4()),
        "anonymousId": "anon-seg-1",
        "timestamp": "2026-12-03T10:00:00.000Z",
        "sentAt": "2026-12-03T10:00:01.000Z",
        "properties": {"product_id": "1004856", "name": "Samsung Galaxy", "price": 130.76, "currency": "usd"},
        "context": {
            "userAgent": CHROME_MAC,
            "page": {
                "url": "https://shop.example.com/product/1004856?email=a%40b.c&x=1",
                "path": "/product/1004856",
                "title": "Galaxy",
                "referrer": "https://www.google.com/",
            },
            "campaign": {"source": "newsletter", "medium": "email", "name": "xmas"},
            "library": {"name": "analytics.js", "version": "next-1.0"},
        },
    }
    msg.update(overrides)
    return msg


def post(invoke, path, body, headers=None, **kwargs):
    return invoke(api_gateway_event(body, path=path, headers={**AUTH, **(headers or {})}, **kwargs))


def stored(bucket_objects):
    return ndjson_records(bucket_objects("events/"))


def test_a_track_call_lands_mapped_onto_the_contract(segment_env, invoke, bucket_objects):
    from datetime import UTC, datetime

    msg = message()
    now = datetime(2026, 12, 3, 10, 0, 5, tzinfo=UTC)
    from ingest.api import handle_http_event
    from ingest.destinations import get_destinations
    from ingest.settings import get_settings

    settings = get_settings()
    response = handle_http_event(
        api_gateway_event(msg, path="/v1/track", headers=AUTH), settings, get_destinations(settings), now=now
    )
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"])["success"] is True
    [event] = stored(bucket_objects)
    assert event["event_id"] == str(
        uuid.uuid5(
            uuid.uuid5(uuid.NAMESPACE_URL, "https://clickstream-analytics.local/segment/message"),
            f"{WRITE_KEY}\x1f{msg['messageId']}",
        )
    )
    assert event["event_name"] == "product_view"
    # client clock 1 s behind at sending: receivedAt - (sentAt - timestamp) = 10:00:05 - 1 s
    assert event["event_timestamp"] == "2026-12-03T10:00:04.000Z"
    assert event["anonymous_id"] == "anon-seg-1"
    assert "session_id" not in event  # derived in the warehouse
    assert event["product"] == {
        "id": "1004856",
        "name": "Samsung Galaxy",
        "price": 130.76,
        "currency": "USD",
    }
    assert event["page"]["url"] == "https://shop.example.com/product/1004856?x=1"  # email scrubbed
    assert event["traffic"] == {"source": "newsletter", "medium": "email", "campaign": "xmas"}
    assert event["device"]["type"] == "desktop"
    assert event["device"]["browser"] == "Chrome"
    assert event["device"]["os"] == "Mac OS X"
    assert event["properties"]["library"] == "analytics.js"
    assert event["properties"]["client_ip_prefix"] == "203.0.113.0/24"


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/b", "/b", "/batch"])
def test_batch_paths(segment_env, invoke, bucket_objects, path):
    response = post(invoke, path, {"batch": [message(), message(event="Product Added")]})
    assert response["statusCode"] == 200, response["json"]
    assert response["json"]["accepted"] == 2
    names = sorted(e["event_name"] for e in stored(bucket_objects))
    assert names == ["add_to_cart", "product_view"]


@pytest.mark.parametrize(
    ("path", "msg", "name"),
    [
        ("/v1/t", message(), "product_view"),
        ("/t", message(), "product_view"),
        (
            "/v1/p",
            message(type="page", properties={"path": "/", "url": "https://shop.example.com/"}),
            "page_view",
        ),
        ("/v1/page", message(type=None, properties={}), "page_view"),
        ("/v1/i", message(type="identify", userId="user-7", traits={"email": "a@b.c"}), "identify"),
        ("/identify", message(type=None, userId="user-7"), "identify"),
    ],
)
def test_single_call_paths(segment_env, invoke, bucket_objects, path, msg, name):
    if msg.get("type") is None:
        del msg["type"]
    response = post(invoke, path, msg)
    assert response["statusCode"] == 200, response["json"]
    [event] = stored(bucket_objects)
    assert event["event_name"] == name
    assert "traits" not in json.dumps(event) and "a@b.c" not in json.dumps(event)


def test_write_key_in_the_body_and_text_plain(segment_env, invoke, bucket_objects):
    """analytics.js: writeKey in each message, Content-Type text/plain, no Authorization."""
    msg = message(writeKey=WRITE_KEY)
    response = invoke(api_gateway_event(msg, path="/v1/t", headers={"content-type": "text/plain"}))
    assert response["statusCode"] == 200, response["json"]
    [event] = stored(bucket_objects)
    assert WRITE_KEY not in json.dumps(event)


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": "Basic " + base64.b64encode(b"wrong-key-123:").decode()},
        {"authorization": "Basic not-base64!"},
        {},
    ],
)
def test_a_wrong_or_missing_write_key_is_401_and_stores_nothing(segment_env, invoke, bucket_objects, headers):
    body = {"batch": [message()]}
    if not headers:
        body["writeKey"] = "wrong-key-123"
    response = invoke(api_gateway_event(body, path="/v1/batch", headers=headers))
    assert response["statusCode"] == 401
    assert response["json"]["code"] == "unauthorized"
    assert bucket_objects("") == {}


def test_no_write_keys_configured_refuses_every_call(ingest_env, invoke, bucket_objects):
    response = invoke(api_gateway_event({"batch": [message()]}, path="/v1/batch", headers=AUTH))
    assert response["statusCode"] == 401
    assert bucket_objects("") == {}


def test_gzip_body(segment_env, invoke, bucket_objects):
    raw = gzip.compress(json.dumps({"batch": [message(), message()]}).encode())
    response = invoke(
        api_gateway_event(
            raw_body=raw, path="/v1/batch", base64_encoded=True, headers={**AUTH, "content-encoding": "gzip"}
        )
    )
    assert response["statusCode"] == 200, response["json"]
    assert len(stored(bucket_objects)) == 2


def test_a_gzip_bomb_is_refused(segment_env, invoke, bucket_objects):
    raw = gzip.compress(b'{"batch": [' + b" " * (2 * 1024 * 1024) + b"]}")
    response = invoke(
        api_gateway_event(
            raw_body=raw, path="/v1/batch", base64_encoded=True, headers={**AUTH, "content-encoding": "gzip"}
        )
    )
    assert response["statusCode"] == 400
    assert "decompressed" in response["json"]["message"]


def test_segment_limits(segment_env, invoke, bucket_objects):
    big = message(properties={"product_id": "1", "blob": "x" * (33 * 1024)})
    # a message over Segment's 32 KB is refused alone: the one beside it is stored
    response = post(invoke, "/v1/batch", {"batch": [message(), big]})
    assert response["statusCode"] == 200
    assert (response["json"]["accepted"], response["json"]["rejected"]) == (1, 1)
    assert response["json"]["rejections"][0]["index"] == 1
    assert response["json"]["rejections"][0]["reason"].startswith("message too large:")
    response = post(invoke, "/v1/track", big)
    assert (response["json"]["accepted"], response["json"]["rejected"]) == (0, 1)
    assert len(bucket_objects("events/")) == 1
    before = set(bucket_objects(""))
    many = {"batch": [{"type": "track"}] * 2501}
    response = post(invoke, "/v1/batch", many)
    assert response["statusCode"] == 400
    assert response["json"]["error"] == "too many messages: 2501 > 2500 per batch"
    huge = {"batch": [message(properties={"product_id": "1", "blob": "x" * 30000}) for _ in range(18)]}
    response = post(invoke, "/v1/batch", huge)
    assert response["statusCode"] == 400
    assert "body too large" in response["json"]["error"]
    assert set(bucket_objects("")) == before  # the refused batches stored nothing
    # /events keeps its own limits: 600 KB is fine there
    from ingest_testlib import make_event

    events = [make_event(properties={"blob": "x" * 30000}) for _ in range(20)]
    assert invoke(api_gateway_event(events))["statusCode"] == 200


def test_the_same_message_id_twice_is_one_event_id(segment_env, invoke, bucket_objects):
    msg = message()
    post(invoke, "/v1/batch", {"batch": [msg]})
    post(invoke, "/v1/batch", {"batch": [msg]})
    ids = [e["event_id"] for e in stored(bucket_objects)]
    assert len(ids) == 2 and len(set(ids)) == 1  # two copies, one event for the warehouse


def test_ecommerce_v2_mapping(segment_env, invoke, bucket_objects):
    products = [
        {"product_id": "p1", "name": "Phone", "price": 100.0, "quantity": 2, "category": "electronics"},
        {"sku": "p2", "name": "Case", "price": 9.5},
    ]
    batch = [
        message(event="Products Searched", properties={"query": "phone"}),
        message(event="Product List Viewed", properties={"category": "electronics", "products": products}),
        message(
            event="Product Added",
            properties={"product_id": "p1", "price": 100.0, "quantity": 2, "cart_id": "c1"},
        ),
        message(event="Product Removed", properties={"product_id": "p1", "quantity": 1}),
        message(event="Cart Viewed", properties={"cart_id": "c1", "products": products}),
        message(
            event="Checkout Started", properties={"value": 209.5, "currency": "EUR", "products": products}
        ),
        message(
            event="Order Completed",
            properties={
                "order_id": "o-1",
                "total": 219.5,
                "revenue": 209.5,
                "currency": "EUR",
                "products": products,
            },
        ),
        message(event="Signed Up"),
        message(event="Signed In", userId="user-1"),
        message(event="Signed Out"),
        message(event="Newsletter Subscribed", properties={"list": "weekly"}),
    ]
    response = post(invoke, "/v1/batch", {"batch": batch})
    assert response["statusCode"] == 200, response["json"]
    assert response["json"]["rejected"] == 0, response["json"]
    events = {e["event_name"]: e for e in stored(bucket_objects)}
    assert list(events) == [
        "search",
        "category_view",
        "add_to_cart",
        "remove_from_cart",
        "view_cart",
        "checkout_start",
        "purchase",
        "sign_up",
        "sign_in",
        "sign_out",
        "newsletter_subscribed",
    ]
    assert events["search"]["search"] == {"query": "phone"}
    assert events["category_view"]["properties"]["category"] == "electronics"
    assert events["category_view"]["properties"]["results_count"] == 2
    assert events["add_to_cart"]["quantity"] == 2
    assert events["add_to_cart"]["cart"] == {"cart_id": "c1"}
    assert events["remove_from_cart"]["quantity"] == 1
    assert events["checkout_start"]["cart"] == {"value": 209.5, "currency": "EUR"}
    assert events["purchase"]["order"] == {
        "order_id": "o-1",
        "revenue": 209.5,
        "currency": "EUR",
        "items": [
            {"product_id": "p1", "name": "Phone", "category": "electronics", "price": 100.0, "quantity": 2},
            {"product_id": "p2", "name": "Case", "price": 9.5, "quantity": 1},
        ],
    }
    assert events["sign_in"]["user_id"] == "user-1"
    assert events["newsletter_subscribed"]["properties"]["list"] == "weekly"
    assert events["newsletter_subscribed"]["properties"]["segment_event"] == "Newsletter Subscribed"


def test_unmappable_messages_are_rejected_with_their_reason(segment_env, invoke, bucket_objects):
    batch = [
        message(),
        message(messageId=None),
        message(anonymousId=None),
        message(event="Product Viewed", properties={"name": "no id"}),
        message(event="Order Completed", properties={"revenue": 5}),
        message(type="group", groupId="g1"),
        message(type="identify", traits={"email": "a@b.c"}),
        message(event="123"),
        "not a message",
        message(
            context={
                "ip": "198.51.100.9",
                "traits": {"email": "a@b.c"},
                "page": {"url": "https://s.example/?email=a%40b.c"},
            },
            event="Product Added",
            properties={"product_id": "1", "quantity": 1.5},
        ),
    ]
    response = post(invoke, "/v1/batch", {"batch": batch})
    assert response["statusCode"] == 200, response["json"]
    reasons = {r["index"]: r["reason"] for r in response["json"]["rejections"]}
    assert response["json"]["accepted"] == 2  # the first and the last
    assert reasons[1].startswith("messageId is required")
    assert reasons[2] == "anonymousId or userId is required"
    assert reasons[3] == "Product Viewed: properties.product_id (or sku) is required"
    assert reasons[4] == "Order Completed: properties.order_id is required"
    assert reasons[5].startswith("group calls are not supported")
    assert reasons[6].startswith("identify without userId")
    assert "snake_case" in reasons[7]
    assert reasons[8].startswith("message is not a JSON object")
    rejected = ndjson_records(bucket_objects("rejected/"))
    assert sorted(r["index"] for r in rejected) == sorted(reasons)
    assert "a@b.c" not in json.dumps(rejected)
    last = [e for e in stored(bucket_objects) if e["event_name"] == "add_to_cart"][0]
    assert last["properties"]["client_ip_prefix"] == "198.51.100.0/24"  # the shopper's, from context.ip
    assert "a%40b.c" not in json.dumps(last)


def test_device_types_from_the_user_agent():
    from ingest.segment import device_of

    assert device_of({"userAgent": IPHONE})["type"] == "mobile"
    assert device_of({"userAgent": IPHONE})["os"] == "iOS"
    ipad = IPHONE.replace("iPhone; CPU iPhone OS", "iPad; CPU OS")
    assert device_of({"userAgent": ipad})["type"] == "tablet"
    tab = "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
    assert device_of({"userAgent": tab})["type"] == "tablet"
    assert device_of({"userAgent": "analytics-python/2.4.0"})["type"] == "other"
    assert device_of({})["type"] is None


def test_clock_skew_correction():
    from datetime import UTC, datetime

    from ingest.segment import Messages, event_time

    received = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
    # the client's clock is an hour ahead: it says it sent at 13:00:10 an event of 13:00:00
    skewed = {"originalTimestamp": "2026-12-03T13:00:00Z", "sentAt": "2026-12-03T13:00:10Z"}
    assert event_time(skewed, received, None) == datetime(2026, 12, 3, 11, 59, 50, tzinfo=UTC)
    batch_sent = {"timestamp": "2026-12-03T13:00:00+01:00"}
    assert event_time(batch_sent, received, "2026-12-03T12:00:00+00:00") == datetime(
        2026, 12, 3, 12, 0, tzinfo=UTC
    )
    assert event_time({}, received, None) == received
    assert Messages([], None, {}).sent_at is None


def test_cookieless_signal_applies(segment_env, invoke, bucket_objects):
    response = post(invoke, "/v1/batch", {"batch": [message(userId="u-1")]}, headers={"sec-gpc": "1"})
    assert response["statusCode"] == 200
    assert response["json"]["cookieless"] == 1
    [event] = stored(bucket_objects)
    assert event["anonymous_id"].startswith("cl-") and "user_id" not in event


def test_a_rejected_message_under_a_privacy_signal_keeps_no_identifier(segment_env, invoke, bucket_objects):
    bad = message(event="Order Completed", userId="u-1", properties={})
    response = post(invoke, "/v1/batch", {"batch": [bad]}, headers={"sec-gpc": "1"})
    assert response["json"]["rejected"] == 1
    [rejected] = ndjson_records(bucket_objects("rejected/"))
    assert "anonymousId" not in rejected["event"] and "userId" not in rejected["event"]


def test_preflight_and_foreign_origin(segment_env, invoke, bucket_objects):
    response = invoke(
        api_gateway_event(
            None, method="OPTIONS", path="/v1/t", headers={"origin": "https://shop.example.com"}
        )
    )
    assert response["statusCode"] == 204
    response = post(invoke, "/v1/t", message(), headers={"origin": "https://evil.example.net"})
    assert response["statusCode"] == 403
    assert bucket_objects("") == {}


def test_write_keys_setting():
    from ingest.settings import Settings, SettingsError

    settings = Settings.from_env({"RAW_BUCKET": "b", "INGEST_WRITE_KEYS": " key-one-123 , key-two-456,"})
    assert settings.write_keys == ("key-one-123", "key-two-456")
    assert "key-one" not in repr(settings)
    with pytest.raises(SettingsError, match="INGEST_WRITE_KEYS"):
        Settings.from_env({"RAW_BUCKET": "b", "INGEST_WRITE_KEYS": "short"})
