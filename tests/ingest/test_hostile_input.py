"""Hostile input from the open internet (issue 32): every event of a request and every message of
a Segment batch is judged on its own against the contract's bounds (contract/event-v1.schema.json,
``x-limits`` and the fields' minimum/maximum); one bad one costs nothing beside it; the handler
never raises; what the endpoint accepts the warehouse accepts; and no client clock makes a
month the shop has not lived.

Each test here failed before the fix: the far-future events made a partition per month, the
Segment batches closed the connection, the lone surrogate was a 500."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from ingest_testlib import api_gateway_event, make_event, ndjson_records
from segment_testlib import (
    WRITE_KEY,
    dashboard_queries,
    load_and_build,
    strict_json_lines,
    warehouse_connection,
)

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = json.loads((ROOT / "contract" / "event-v1.schema.json").read_text())
LIMITS = CONTRACT["x-limits"]
AUTH = {"authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
NOW = datetime.now(UTC).replace(microsecond=0)


def stamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.fixture
def segment_env(ingest_env, monkeypatch):
    from ingest.settings import get_settings

    monkeypatch.setenv("INGEST_WRITE_KEYS", WRITE_KEY)
    get_settings.cache_clear()
    yield ingest_env
    get_settings.cache_clear()


def post_events(invoke, raw_body: str):
    """POST /events with a body as sent (raw text, so it may hold what json.dumps never writes)."""
    return invoke(api_gateway_event(raw_body=raw_body))


def segment_message(**overrides) -> dict:
    message = {
        "type": "track",
        "event": "Product Added",
        "messageId": str(uuid.uuid4()),
        "anonymousId": "anon-seg-hostile",
        "timestamp": stamp(NOW - timedelta(seconds=5)),
        "sentAt": stamp(NOW - timedelta(seconds=1)),
        "properties": {"product_id": "p-1", "price": 10.5, "quantity": 1},
        "context": {"userAgent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(message.get(key), dict):
            message[key] = {**message[key], **value}
        else:
            message[key] = value
    return message


# ---- the contract's bounds, the same everywhere --------------------------------------------


def test_the_warehouse_applies_the_contracts_bounds():
    """dbt's vars and the loader's line limit are the contract's x-limits and field bounds."""
    from loader.formats import MAX_LINE_BYTES

    project_vars = yaml.safe_load((ROOT / "dbt_project.yml").read_text())["vars"]
    assert project_vars["max_clock_ahead_seconds"] == LIMITS["max_clock_ahead_seconds"]
    assert project_vars["max_event_age_days"] == LIMITS["max_event_age_days"]
    assert MAX_LINE_BYTES == LIMITS["max_event_bytes"]
    props = CONTRACT["properties"]
    amounts = [
        CONTRACT["$defs"]["product"]["properties"]["price"],
        props["cart"]["properties"]["value"],
        props["order"]["properties"]["revenue"],
        props["order"]["properties"]["items"]["items"]["properties"]["price"],
    ]
    counts = [
        props["quantity"],
        props["search"]["properties"]["results_count"],
        props["order"]["properties"]["items"]["items"]["properties"]["quantity"],
    ]
    for field in amounts:
        assert (field["minimum"], field["maximum"]) == (
            -project_vars["max_abs_amount"],
            project_vars["max_abs_amount"],
        )
    for field in counts:
        assert (field["minimum"], field["maximum"]) == (
            -project_vars["max_abs_count"],
            project_vars["max_abs_count"],
        )
    # the loader's json_integer reads at most 9 digits: the count bound is what it can read
    assert len(str(project_vars["max_abs_count"])) == 9


@pytest.mark.parametrize(
    "offset, accepted",
    [
        (timedelta(seconds=LIMITS["max_clock_ahead_seconds"]), True),
        (timedelta(seconds=LIMITS["max_clock_ahead_seconds"] + 1), False),
        (-timedelta(days=LIMITS["max_event_age_days"]), True),
        (-timedelta(days=LIMITS["max_event_age_days"], seconds=1), False),
    ],
)
def test_the_time_window_around_received_at_on_both_sides(ingest_env, invoke, offset, accepted):
    from ingest.api import handle_http_event
    from ingest.destinations import get_destinations
    from ingest.settings import get_settings

    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    event = make_event(event_timestamp=stamp(now + offset))
    settings = get_settings()
    response = handle_http_event(api_gateway_event([event]), settings, get_destinations(settings), now=now)
    body = json.loads(response["body"])
    assert response["statusCode"] == 200
    assert (body["accepted"], body["rejected"]) == ((1, 0) if accepted else (0, 1))
    if not accepted:
        assert "event_timestamp" in body["rejections"][0]["reason"]


@pytest.mark.parametrize(
    "field, value, accepted",
    [
        ("revenue", 1_000_000_000, True),
        ("revenue", 1_000_000_000.01, False),
        ("revenue", -1_000_000_000.01, False),
        ("quantity", 999_999_999, True),
        ("quantity", 1_000_000_000, False),
        ("quantity", 2**40, False),
    ],
)
def test_amounts_and_counts_on_both_sides_of_their_bounds(ingest_env, invoke, field, value, accepted):
    order = {"order_id": "o-1", "revenue": 10, "items": [{"product_id": "p-1", "quantity": 1, "price": 10}]}
    if field == "revenue":
        order["revenue"] = value
    else:
        order["items"][0]["quantity"] = value
    response = invoke(api_gateway_event([make_event(event_name="purchase", order=order)]))
    assert (response["json"]["accepted"], response["json"]["rejected"]) == ((1, 0) if accepted else (0, 1))


def test_an_event_over_the_loaders_line_limit_is_refused_at_the_door(ingest_env, invoke, bucket_objects):
    """Between 256 KB and 1 MiB: once stored as accepted, then refused by the loader."""
    limit = LIMITS["max_event_bytes"]
    small = make_event(properties={"blob": "x" * (limit - 2000)})
    big = make_event(properties={"blob": "x" * (limit + 10)})
    response = invoke(api_gateway_event([small, big]))
    assert (response["json"]["accepted"], response["json"]["rejected"]) == (1, 1)
    assert response["json"]["rejections"][0]["index"] == 1
    assert "event too large" in response["json"]["rejections"][0]["reason"]
    [stored] = ndjson_records(bucket_objects("events/"))
    assert len(json.dumps(stored).encode()) <= limit


# ---- POST /events: one bad event among good ones -------------------------------------------


@pytest.mark.parametrize(
    "bad_fragment, reason",
    [
        ('"page": {"title": "\\ud800"}', "not storable text"),
        ('"properties": {"\\udfff": 1}', "not storable text"),
        ('"properties": {"note": "a\\u0000b"}', "not storable text"),
        ('"properties": {"n": 1e400}', "not a finite number"),
        ('"properties": {"n": -1e400}', "not a finite number"),
        ('"properties": {"n": 1' + "0" * 5000 + "}", "not a finite number"),
        ('"quantity": 1e30, "event_name": "add_to_cart", "product": {"id": "p"}', "quantity"),
        ('"event_timestamp": "9999-12-31T23:59:59-01:00"', "event_timestamp"),
        ('"event_timestamp": "0001-01-01T00:00:00Z"', "event_timestamp"),
        ('"event_timestamp": "5000-01-01T00:00:00Z"', "event_timestamp"),
    ],
)
def test_one_bad_event_is_refused_alone_with_its_reason(
    ingest_env, invoke, bucket_objects, bad_fragment, reason
):
    good = [make_event(), make_event()]
    bad = json.dumps(make_event(event_name="page_view"))[:-1] + ", " + bad_fragment + "}"
    body = "[" + json.dumps(good[0]) + ", " + bad + ", " + json.dumps(good[1]) + "]"
    response = post_events(invoke, body)

    assert response["statusCode"] == 200, response
    assert (response["json"]["accepted"], response["json"]["rejected"]) == (2, 1)
    assert response["json"]["rejections"][0]["index"] == 1
    assert reason in response["json"]["rejections"][0]["reason"]
    stored = ndjson_records(bucket_objects("events/"))
    assert sorted(e["event_id"] for e in stored) == sorted(e["event_id"] for e in good)
    # the refusal is kept, as valid JSON, with its reason
    rejected_objects = bucket_objects("rejected/")
    [refusal] = [json.loads(line) for body in rejected_objects.values() for line in body.splitlines()]
    assert refusal["index"] == 1 and reason in refusal["reason"]
    for body in rejected_objects.values():
        strict_json_lines(body)


# ---- Segment: one bad message among good ones ----------------------------------------------


BAD_MESSAGES = {
    "quantity 1e400": '{"properties": {"product_id": "p-9", "quantity": 1e400}}',
    'quantity "nan"': '{"properties": {"product_id": "p-9", "quantity": "nan"}}',
    'price "inf"': '{"properties": {"product_id": "p-9", "price": "inf"}}',
    'screen "1e999"': '{"context": {"screen": {"width": "1e999", "height": 800}}}',
    "year 0001, sentAt 9999": '{"timestamp": "0001-01-01T00:00:00Z", "sentAt": "9999-12-31T23:59:59Z"}',
    "lone surrogate": '{"properties": {"product_id": "p-9", "note": "\\ud800"}}',
    "lone surrogate key": '{"properties": {"product_id": "p-9", "\\udc00": 1}}',
    "oversized": '{"properties": {"product_id": "p-9", "blob": "' + "x" * 33_000 + '"}}',
}


def merged_message_text(overrides: str) -> str:
    """A message with the overrides merged in as raw JSON text (they may not survive json.dumps)."""
    base = segment_message()
    text = json.dumps(base)
    extra = overrides.strip()[1:-1]
    # later keys win in json.loads: nested overrides replace whole objects, so repeat the ids
    for key in ("properties", "context"):
        if f'"{key}"' in extra:
            text = text.replace(f'"{key}": ', f'"{key}_original": ', 1)
    return text[:-1] + ", " + extra + "}"


@pytest.mark.parametrize("name", list(BAD_MESSAGES))
def test_one_bad_segment_message_is_refused_alone(segment_env, invoke, bucket_objects, name):
    good = [segment_message(), segment_message(), segment_message()]
    bad = merged_message_text(BAD_MESSAGES[name])
    body = (
        '{"batch": [' + ", ".join([json.dumps(good[0]), bad, json.dumps(good[1]), json.dumps(good[2])]) + "]}"
    )
    response = invoke(api_gateway_event(raw_body=body, path="/v1/batch", headers=AUTH))

    assert response["statusCode"] == 200, response
    body_json = response["json"]
    assert body_json["success"] is True
    if name == 'screen "1e999"':  # no screen is recorded; the message itself is fine
        assert (body_json["accepted"], body_json["rejected"]) == (4, 0)
        stored = ndjson_records(bucket_objects("events/"))
        assert all("screen" not in (e.get("device") or {}) for e in stored)
        return
    assert (body_json["accepted"], body_json["rejected"]) == (3, 1), body_json
    assert body_json["rejections"][0]["index"] == 1
    assert len(ndjson_records(bucket_objects("events/"))) == 3
    for text in bucket_objects("rejected/").values():
        strict_json_lines(text)


def test_a_single_segment_call_with_a_bad_timestamp_is_answered(segment_env, invoke):
    body = merged_message_text(BAD_MESSAGES["year 0001, sentAt 9999"])
    response = invoke(api_gateway_event(raw_body=body, path="/v1/track", headers=AUTH))
    assert response["statusCode"] == 200
    assert (response["json"]["accepted"], response["json"]["rejected"]) == (0, 1)
    assert "sentAt" in response["json"]["rejections"][0]["reason"]


# ---- what the endpoint accepts, the warehouse accepts; no month the shop has not lived ------


def month_start(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def hostile_requests() -> tuple[list[str], list[str]]:
    """(POST /events bodies, Segment batch bodies): good events beside every hostile kind the
    issue names, far-future and far-past months by the hundred among them."""
    future = [
        make_event(event_timestamp=f"{5000 + i // 12:04d}-{i % 12 + 1:02d}-15T12:00:00Z") for i in range(300)
    ]
    past = [make_event(event_timestamp=f"{1000 + i:04d}-06-15T12:00:00Z") for i in range(100)]
    good = [make_event(event_timestamp=stamp(NOW - timedelta(minutes=i))) for i in range(20)]
    # a real shop's day of big orders: 1,001 at the bound add up to more than 10^12
    big_orders = [
        make_event(
            event_name="purchase",
            event_timestamp=stamp(NOW - timedelta(seconds=i)),
            order={
                "order_id": f"o-{i}",
                "revenue": 1_000_000_000,
                "currency": "EUR",
                "items": [{"product_id": "p-big", "price": 1_000_000_000, "quantity": 1}],
            },
        )
        for i in range(1001)
    ]
    events_bodies = [
        json.dumps(future[:150] + good[:5]),
        json.dumps(future[150:] + good[5:10]),
        json.dumps(past + good[10:15]),
        json.dumps(big_orders[:400]),
        json.dumps(big_orders[400:800]),
        json.dumps(big_orders[800:]),
        "["
        + json.dumps(good[15])
        + ', {"event_name": "page_view", "x": "\\ud800"}, '
        + json.dumps(make_event(event_name="purchase", order={"order_id": "o-x", "revenue": 1e308}))[:-1]
        + ', "properties": {"n": 1e400}}, '
        + json.dumps(make_event(event_timestamp="9999-12-31T23:59:59-01:00"))
        + ", "
        + json.dumps(good[16])
        + "]",
        json.dumps(good[17:]),
    ]
    segment_bodies = [
        '{"batch": ['
        + ", ".join([json.dumps(segment_message()), merged_message_text(text), json.dumps(segment_message())])
        + "]}"
        for text in BAD_MESSAGES.values()
    ]
    return events_bodies, segment_bodies


def partition_months(conn, table: str) -> list[date]:
    with conn.cursor() as cur:
        cur.execute(
            "select pg_get_expr(part.relpartbound, part.oid) from pg_inherits as inherits"
            " join pg_class as part on part.oid = inherits.inhrelid where inherits.inhparent = %s::regclass",
            (table,),
        )
        bounds = [row[0] for row in cur.fetchall()]
    return sorted(date.fromisoformat(b.split("'")[1][:10]) for b in bounds if b != "DEFAULT")


def test_hostile_requests_cost_nothing_beside_them_and_the_warehouse_builds(
    segment_env, invoke, bucket_objects, make_database, dbt
):
    events_bodies, segment_bodies = hostile_requests()
    accepted = 0
    for body in events_bodies:
        response = post_events(invoke, body)
        assert response["statusCode"] == 200, response
        accepted += response["json"]["accepted"]
    for body in segment_bodies:
        response = invoke(api_gateway_event(raw_body=body, path="/v1/batch", headers=AUTH))
        assert response["statusCode"] == 200, response
        accepted += response["json"]["accepted"]
    stored = ndjson_records(bucket_objects("events/"))
    assert len(stored) == accepted == 20 + 1001 + 2 * len(BAD_MESSAGES) + 1  # the 1e999 screen's message

    db = load_and_build(segment_env, make_database, dbt, NOW - timedelta(days=1))  # raises on a failed node
    conn = warehouse_connection(db)
    try:
        with conn.cursor() as cur:
            cur.execute("select count(*) from raw.clickstream_events")
            assert cur.fetchone()[0] == accepted
            cur.execute("select count(*) from analytics.rejected_events")
            assert cur.fetchone()[0] == 0, "the warehouse refused what the endpoint accepted"
            cur.execute("select count(*), count(distinct event_id) from analytics.fact_events")
            assert cur.fetchone() == (accepted, accepted)
        this_month = NOW.date().replace(day=1)
        months = partition_months(conn, "analytics.fact_events")
        assert months and max(months) <= month_start(this_month, 1), months
        assert min(months) >= month_start(this_month, -2), months
        # a second build passes too (nothing left behind that fails every later run)
        dbt(db, "build", "--exclude-resource-type", "unit_test")

        # the dashboards' queries over the range that holds the big orders
        queries = dashboard_queries()
        start, end = NOW.date() - timedelta(days=1), NOW.date()
        kpis = queries.overview_kpis(conn, start, end)
        revenue = kpis.df.loc[kpis.df["period"] == "current", "revenue"].iloc[0]
        assert revenue == 1001 * 1_000_000_000  # over 10^12: no numeric(14, 2) overflow
        products = queries.product_performance(conn, start, end, rank_by="revenue")
        assert (
            products.df.loc[products.df["product_id"] == "p-big", "revenue"].iloc[0] == 1001 * 1_000_000_000
        )
        bounds = queries.date_bounds(conn)
        assert bounds.df["max_date"].iloc[0] <= NOW.date() + timedelta(days=1)
        queries.data_health(conn)
    finally:
        conn.close()
