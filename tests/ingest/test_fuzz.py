"""A property-based fuzzer (Hypothesis) over the ingest handler and its Segment mapping (issue 32):
any JSON value in any field of an event or a message, any header. Whatever comes, the handler
answers (no exception, never a 500 while storage works), every event or message is accepted or
refused with a reason, and what is stored is JSON every reader takes. The slower test loads what
was accepted into a warehouse of its own: the loader takes every line, dbt builds with no failed
node, and the dashboards' queries answer.

Failing examples Hypothesis found are kept as plain regression tests in test_hostile_input.py."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from ingest_testlib import api_gateway_event, make_event
from segment_testlib import (
    WRITE_KEY,
    dashboard_queries,
    load_and_build,
    strict_json_lines,
    warehouse_connection,
)

ROOT = Path(__file__).resolve().parents[2]
AUTH = {"authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
CONTRACT = json.loads((ROOT / "contract" / "event-v1.schema.json").read_text())
ANSWERS = {200, 400, 401, 403, 413, 415}  # 403: an Origin not allowed

# text of any code point, lone surrogates included (what JSON's \uXXXX escapes can carry)
any_text = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=40),
    # what random text rarely draws: lone surrogates, NUL, separators, a BOM, numbers as text
    st.sampled_from(
        ["\ud800", "x\udfff", "\udc00\ud800", "\x00", "\u2028", "\ufeff", "nan", "-inf", "1e999", ""]
    ),
)
any_number = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False),  # NaN/Infinity literals are not JSON: json.dumps writes them, tested below
    st.sampled_from([0, -0.0, 1e308, -1e308, 2**53 + 1, 2**63, 10**30, 999_999_999, 1_000_000_000]),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), any_number, any_text),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=12,
)
timestamps = st.one_of(
    any_text,
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
    st.sampled_from(["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "2026-02-30T00:00:00Z"]),
)
EVENT_FIELDS = sorted(CONTRACT["properties"]) + ["extra"]
NESTED = {
    "product": ["id", "price", "name", "category", "brand", "currency"],
    "order": ["order_id", "revenue", "items", "currency"],
    "page": ["url", "path", "title", "referrer"],
    "device": ["type", "user_agent", "screen"],
    "cart": ["cart_id", "value", "currency"],
    "search": ["query", "results_count"],
}


@st.composite
def hostile_events(draw) -> dict:
    """A valid event (of now) with any of its fields, or any field of its objects, replaced by
    any JSON value."""
    event = make_event(
        event_name=draw(st.sampled_from(["page_view", "product_view", "add_to_cart", "purchase", "search"])),
        product={"id": "p-1", "price": 10.0},
        quantity=1,
        order={
            "order_id": "o-1",
            "revenue": 10,
            "items": [{"product_id": "p-1", "quantity": 1, "price": 10}],
        },
        event_timestamp=(datetime.now(UTC) - timedelta(seconds=draw(st.integers(0, 3600)))).isoformat(),
    )
    for field, value in draw(st.dictionaries(st.sampled_from(EVENT_FIELDS), json_values, max_size=3)).items():
        event[field] = value
    for parent, value in draw(
        st.dictionaries(
            st.sampled_from(sorted(NESTED)), st.tuples(st.integers(0, 5), json_values), max_size=2
        )
    ).items():
        if isinstance(event.get(parent), dict):
            keys = NESTED[parent]
            event[parent] = {**event[parent], keys[value[0] % len(keys)]: value[1]}
    if draw(st.booleans()):
        event["event_timestamp"] = draw(timestamps)
    return event


@st.composite
def hostile_messages(draw) -> dict:
    message = {
        "type": draw(st.sampled_from(["track", "page", "identify", "screen", "group", "alias", "other"])),
        "event": draw(st.sampled_from(["Product Added", "Order Completed", "Product Viewed", "Signed In"])),
        "messageId": str(uuid.uuid4()),
        "anonymousId": "anon-fuzz",
        "userId": "user-fuzz",
        "timestamp": datetime.now(UTC).isoformat(),
        "sentAt": datetime.now(UTC).isoformat(),
        "properties": {"product_id": "p-1", "price": 10, "quantity": 1, "order_id": "o-1", "revenue": 10},
        "context": {
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
            "screen": {"width": 1, "height": 1},
        },
    }
    for field, value in draw(
        st.dictionaries(
            st.sampled_from([*message, "originalTimestamp", "writeKey", "traits"]), json_values, max_size=3
        )
    ).items():
        message[field] = value
    for parent in ("properties", "context"):
        extra = draw(
            st.dictionaries(
                st.sampled_from(
                    [
                        "product_id",
                        "price",
                        "quantity",
                        "revenue",
                        "products",
                        "total",
                        "value",
                        "screen",
                        "ip",
                        "page",
                        "campaign",
                        "userAgent",
                        "library",
                        "sessionId",
                        "x",
                    ]
                ),
                json_values,
                max_size=3,
            )
        )
        if isinstance(message.get(parent), dict):
            message[parent] = {**message[parent], **extra}
    if draw(st.booleans()):
        message["timestamp"] = draw(timestamps)
    return message


headers_strategy = st.dictionaries(
    st.sampled_from(
        [
            "content-type",
            "content-encoding",
            "origin",
            "host",
            "x-forwarded-for",
            "dnt",
            "sec-gpc",
            "user-agent",
            "authorization",
            "cookie",
            "referer",
        ]
    ),
    st.text(max_size=60),
    max_size=4,
)


def check_answer(response: dict, sent: int) -> dict:
    """The protocol's answer: every event accounted for, each refusal with its reason."""
    assert response["statusCode"] in ANSWERS, response
    body = json.loads(response["body"]) if response["body"] else {}
    if response["statusCode"] == 200:
        # "dropped": accepted, but not stored under a privacy signal with INGEST_PRIVACY_SIGNALS=drop
        assert body["accepted"] + body["rejected"] + body.get("dropped", 0) == sent
        assert all(r["reason"] for r in body["rejections"])
        assert sorted(r["index"] for r in body["rejections"]) == sorted(
            {r["index"] for r in body["rejections"]}
        )
    else:
        assert body.get("error")
    return body


def body_text(items: list) -> str:
    """As a client could send it: JSON, lone surrogates escaped; a NaN/Infinity literal when a
    float is not finite (refused as the whole body is not JSON)."""
    return json.dumps(items)


@pytest.fixture
def handler(ingest_env, monkeypatch):
    from ingest.api import handle_http_event
    from ingest.destinations import get_destinations
    from ingest.settings import get_settings

    monkeypatch.setenv("INGEST_WRITE_KEYS", WRITE_KEY)
    get_settings.cache_clear()
    get_destinations.cache_clear()
    configured = get_settings()
    destinations = get_destinations(configured)

    def _handle(event: dict) -> dict:
        return handle_http_event(event, configured, destinations)

    yield _handle
    get_settings.cache_clear()
    get_destinations.cache_clear()


FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@FUZZ
@given(events=st.lists(hostile_events(), min_size=1, max_size=4), headers=headers_strategy)
def test_any_event_any_header_is_answered_and_judged(handler, events, headers):
    response = handler(api_gateway_event(raw_body=body_text(events), headers=headers))
    check_answer(response, len(events))


@FUZZ
@given(messages=st.lists(hostile_messages(), min_size=1, max_size=4), headers=headers_strategy)
def test_any_segment_message_is_answered_and_judged(handler, messages, headers):
    body = {"batch": messages, "sentAt": datetime.now(UTC).isoformat()}
    response = handler(
        api_gateway_event(raw_body=json.dumps(body), path="/v1/batch", headers={**headers, **AUTH})
    )
    check_answer(response, len(messages))


@FUZZ
@given(document=json_values, path=st.sampled_from(["/events", "/v1/batch", "/v1/t", "/v1/identify", "/b"]))
def test_any_json_document_on_any_route_is_answered(handler, document, path):
    response = handler(api_gateway_event(raw_body=json.dumps(document), path=path, headers=AUTH))
    assert response["statusCode"] in ANSWERS, response


@FUZZ
@given(raw=st.binary(max_size=200), base64_encoded=st.booleans())
def test_any_bytes_are_answered(handler, raw, base64_encoded):
    event = api_gateway_event(raw_body=raw.decode("latin-1"), base64_encoded=base64_encoded)
    assert handler(event)["statusCode"] in ANSWERS


def test_what_the_fuzzer_had_accepted_loads_builds_and_shows(
    ingest_env, handler, bucket_objects, make_database, dbt
):
    """The slow half: fuzz both routes into one bucket, then load everything accepted into a
    warehouse of its own, build it, and ask the dashboards' questions of it."""
    sent = {"accepted": 0}

    @seed(20261207)
    @settings(FUZZ, max_examples=150)
    @given(events=st.lists(hostile_events(), min_size=1, max_size=4))
    def fuzz_events(events):
        body = check_answer(handler(api_gateway_event(raw_body=body_text(events))), len(events))
        sent["accepted"] += body.get("accepted", 0)

    @seed(20261208)
    @settings(FUZZ, max_examples=150)
    @given(messages=st.lists(hostile_messages(), min_size=1, max_size=4))
    def fuzz_messages(messages):
        raw = json.dumps({"batch": messages})
        body = check_answer(
            handler(api_gateway_event(raw_body=raw, path="/v1/batch", headers=AUTH)), len(messages)
        )
        sent["accepted"] += body.get("accepted", 0)

    fuzz_events()
    fuzz_messages()
    stored = bucket_objects("events/")
    lines = [line for body in stored.values() for line in strict_json_lines(body)]
    for body in bucket_objects("rejected/").values():
        strict_json_lines(body)
    assert len(lines) == sent["accepted"] > 50

    db = load_and_build(ingest_env, make_database, dbt, datetime.now(UTC) - timedelta(days=1))
    conn = warehouse_connection(db)
    try:
        with conn.cursor() as cur:
            cur.execute("select reason, left(line, 300) from raw.rejected_lines")
            assert cur.fetchall() == [], "the loader refused a line the endpoint accepted"
            cur.execute("select count(*) from raw.clickstream_events")
            assert cur.fetchone()[0] == len(lines)
            cur.execute("select reason, count(*) from analytics.rejected_events group by 1")
            assert cur.fetchall() == [], "the warehouse quarantined what the endpoint accepted"
        queries = dashboard_queries()
        start, end = (datetime.now(UTC) - timedelta(days=2)).date(), datetime.now(UTC).date()
        for ask in (
            lambda: queries.overview_kpis(conn, start, end),
            lambda: queries.product_performance(conn, start, end, rank_by="revenue"),
            lambda: queries.events_per_day(conn, start, end),
            lambda: queries.date_bounds(conn),
            lambda: queries.data_health(conn),
            lambda: queries.filter_choices(conn),
            lambda: queries.price_bounds(conn),
        ):
            ask()
    finally:
        conn.close()
