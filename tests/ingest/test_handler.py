"""The Lambda handler, called with API Gateway HTTP API v2 events, writing to the test moto
server: what it answers and which objects it leaves in the bucket."""

from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from ingest_testlib import CLIENT_IPV4, FORWARDED_IPV4, api_gateway_event, make_event, ndjson_records

from ingest.logs import JsonFormatter
from ingest.validation import parse_rfc3339

KEY_PATTERN = re.compile(r"^events/(\d{4})/(\d{2})/(\d{2})/(\d{2})/[^/]+\.json$")
REJECTED_PATTERN = re.compile(r"^rejected/\d{4}/\d{2}/\d{2}/\d{2}/[^/]+\.json$")


def test_one_valid_event_is_stored_with_received_at(invoke, bucket_objects):
    event = make_event()
    before = datetime.now(UTC)

    response = invoke(api_gateway_event(event))

    assert response["statusCode"] == 200
    assert response["json"]["accepted"] == 1
    assert response["json"]["rejected"] == 0
    assert response["json"]["rejections"] == []
    objects = bucket_objects("")
    assert len(objects) == 1
    key = next(iter(objects))
    match = KEY_PATTERN.match(key)
    assert match, key
    [stored] = ndjson_records(objects)
    received = parse_rfc3339(stored["received_at"])
    assert received.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= received <= datetime.now(UTC) + timedelta(seconds=1)
    assert tuple(int(p) for p in match.groups()) == (
        received.year,
        received.month,
        received.day,
        received.hour,
    )
    for field in (
        "event_id",
        "event_name",
        "event_timestamp",
        "anonymous_id",
        "session_id",
        "page",
        "device",
    ):
        assert stored[field] == event[field]


def test_a_batch_is_stored_as_one_ndjson_object(invoke, bucket_objects):
    events = [make_event(event_name="page_view") for _ in range(20)]
    events.append(make_event(event_name="product_view", product={"id": "1004856", "price": 130.76}))

    response = invoke(api_gateway_event(events))

    assert response["statusCode"] == 200
    assert (response["json"]["accepted"], response["json"]["rejected"]) == (21, 0)
    objects = bucket_objects("events/")
    assert len(objects) == 1
    body = next(iter(objects.values())).decode()
    assert body.endswith("\n") and len(body.splitlines()) == 21
    assert [r["event_id"] for r in ndjson_records(objects)] == [e["event_id"] for e in events]
    assert bucket_objects("rejected/") == {}


def test_events_wrapper_object_is_accepted(invoke, bucket_objects):
    events = [make_event(), make_event()]

    response = invoke(api_gateway_event({"events": events}))

    assert response["statusCode"] == 200
    assert response["json"]["accepted"] == 2
    assert {r["event_id"] for r in ndjson_records(bucket_objects("events/"))} == {
        e["event_id"] for e in events
    }


def test_base64_encoded_body(invoke, bucket_objects):
    event = make_event(page={"title": "Café – ünïcode"})

    response = invoke(api_gateway_event(raw_body=json.dumps([event]).encode("utf-8"), base64_encoded=True))

    assert response["statusCode"] == 200
    [stored] = ndjson_records(bucket_objects("events/"))
    assert stored["page"]["title"] == "Café – ünïcode"


def test_mixed_batch_stores_valid_and_rejects_invalid_with_reasons(invoke, bucket_objects):
    good = [make_event(), make_event(), make_event()]
    missing_id = make_event()
    del missing_id["event_id"]
    bad_type = make_event(quantity="two", event_name="add_to_cart", product={"id": "1"})
    not_object = 42
    batch = [good[0], missing_id, good[1], bad_type, not_object, good[2]]

    response = invoke(api_gateway_event(batch))

    assert response["statusCode"] == 200
    body = response["json"]
    assert (body["accepted"], body["rejected"]) == (3, 3)
    reasons = {r["index"]: r["reason"] for r in body["rejections"]}
    assert set(reasons) == {1, 3, 4}
    assert "'event_id' is a required property" in reasons[1]
    assert "$.quantity" in reasons[3] and "integer" in reasons[3]
    assert "not a JSON object" in reasons[4]

    assert [r["event_id"] for r in ndjson_records(bucket_objects("events/"))] == [e["event_id"] for e in good]
    rejected_objects = bucket_objects("rejected/")
    assert len(rejected_objects) == 1 and REJECTED_PATTERN.match(next(iter(rejected_objects)))
    rejected = ndjson_records(rejected_objects)
    assert [(r["index"], r["reason"]) for r in rejected] == [(i, reasons[i]) for i in (1, 3, 4)]
    assert [r["event"] for r in rejected] == [missing_id, bad_type, not_object]
    assert all(r["request_id"] and parse_rfc3339(r["received_at"]) for r in rejected)


def test_event_without_event_id_is_rejected_never_given_one(invoke, bucket_objects):
    event = make_event()
    del event["event_id"]

    response = invoke(api_gateway_event(event))

    assert response["statusCode"] == 200
    assert (response["json"]["accepted"], response["json"]["rejected"]) == (0, 1)
    assert response["json"]["rejections"][0]["index"] == 0
    assert bucket_objects("events/") == {}
    [rejected] = ndjson_records(bucket_objects("rejected/"))
    assert "event_id" not in rejected["event"]
    assert rejected["event"] == event


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"event_id": 12345}, "$.event_id: 12345 is not of type 'string'"),
        ({"event_id": "not-a-uuid"}, "$.event_id: 'not-a-uuid' does not match"),
        ({"event_timestamp": 1714560000}, "$.event_timestamp: 1714560000 is not of type 'string'"),
        (
            {"event_timestamp": "2024-05-01T12:00:00"},
            "$.event_timestamp: '2024-05-01T12:00:00' does not match",
        ),
        ({"event_timestamp": "2024-02-30T12:00:00Z"}, "not a valid RFC 3339 date-time"),
        ({"event_name": "Page View"}, "$.event_name: 'Page View' does not match"),
        ({"session_id": None}, "$.session_id: None is not of type 'string'"),
        ({"device": {"type": "smart-fridge"}}, "$.device.type: 'smart-fridge' is not one of"),
        ({"event_name": "product_view"}, "'product' is a required property"),
        ({"event_name": "purchase", "order": {"revenue": 10}}, "$.order: 'order_id' is a required property"),
        ({"properties": []}, "$.properties: [] is not of type 'object'"),
    ],
)
def test_wrong_types_are_rejected_with_the_reason(invoke, bucket_objects, overrides, expected):
    event = make_event(**overrides)

    response = invoke(api_gateway_event([make_event(), event]))

    assert response["statusCode"] == 200
    assert (response["json"]["accepted"], response["json"]["rejected"]) == (1, 1)
    [rejection] = response["json"]["rejections"]
    assert rejection["index"] == 1
    assert expected in rejection["reason"]
    [stored_rejection] = ndjson_records(bucket_objects("rejected/"))
    assert stored_rejection["event"] == event and stored_rejection["reason"] == rejection["reason"]


def test_unknown_well_formed_event_name_is_accepted(invoke, bucket_objects):
    event = make_event(event_name="wishlist_add_v2", properties={"list": "birthday"})

    response = invoke(api_gateway_event(event))

    assert response["statusCode"] == 200
    assert response["json"]["accepted"] == 1
    [stored] = ndjson_records(bucket_objects("events/"))
    assert stored["event_name"] == "wishlist_add_v2"
    assert stored["properties"]["list"] == "birthday"


def test_client_sent_received_at_is_replaced_by_the_server_time(invoke, bucket_objects):
    event = make_event(received_at="1999-01-01T00:00:00Z")

    invoke(api_gateway_event(event))

    [stored] = ndjson_records(bucket_objects("events/"))
    assert parse_rfc3339(stored["received_at"]).year == datetime.now(UTC).year


@pytest.mark.parametrize(
    "raw_body",
    ["{not json", "", "NaN", '"just a string"', "42", "null", '{"events": {"event_id": "x"}}', "[1, 2"],
)
def test_body_not_json_or_not_events_is_400(invoke, bucket_objects, raw_body):
    response = invoke(api_gateway_event(raw_body=raw_body))

    assert response["statusCode"] == 400
    assert response["json"]["error"]
    assert bucket_objects("") == {}


def test_invalid_base64_is_400(invoke):
    event = api_gateway_event(make_event())
    event["isBase64Encoded"] = True
    event["body"] = "%%% not base64 %%%"

    assert invoke(event)["statusCode"] == 400


def test_over_500_events_is_413_and_nothing_stored(invoke, bucket_objects):
    response = invoke(api_gateway_event([make_event() for _ in range(501)]))

    assert response["statusCode"] == 413
    assert "501" in response["json"]["error"]
    assert bucket_objects("") == {}


def test_exactly_500_events_are_accepted(invoke, bucket_objects):
    response = invoke(api_gateway_event({"events": [make_event() for _ in range(500)]}))

    assert response["statusCode"] == 200
    assert response["json"]["accepted"] == 500
    assert len(ndjson_records(bucket_objects("events/"))) == 500


@pytest.mark.parametrize("base64_encoded", [False, True])
def test_over_1_mb_is_413_and_nothing_stored(invoke, bucket_objects, base64_encoded):
    padding = "x" * (1024 * 1024)
    response = invoke(
        api_gateway_event(make_event(properties={"pad": padding}), base64_encoded=base64_encoded)
    )

    assert response["statusCode"] == 413
    assert "too large" in response["json"]["error"]
    assert bucket_objects("") == {}


def test_ip_address_is_never_stored_in_full(invoke, bucket_objects):
    ipv6 = "2001:db8:85a3:8d3:1319:8a2e:370:7348"
    first = invoke(api_gateway_event([make_event(), {"bad": True}]))
    second = invoke(
        api_gateway_event(
            make_event(),
            source_ip=ipv6,
            headers={"x-forwarded-for": f"{ipv6}, {FORWARDED_IPV4}", "x-real-ip": ipv6},
        )
    )

    assert first["statusCode"] == second["statusCode"] == 200
    everything = b"".join(bucket_objects("").values()).decode()
    for full in (CLIENT_IPV4, FORWARDED_IPV4, ipv6, ipv6.replace(":", "")):
        assert full not in everything
    prefixes = [r["properties"]["client_ip_prefix"] for r in ndjson_records(bucket_objects("events/"))]
    assert sorted(prefixes) == sorted(["203.0.113.0/24", "2001:db8:85a3::/48"])


def test_ip_taken_from_x_forwarded_for_when_no_source_ip(invoke, bucket_objects):
    invoke(api_gateway_event(make_event(), source_ip=""))

    [stored] = ndjson_records(bucket_objects("events/"))
    assert stored["properties"]["client_ip_prefix"] == "198.51.100.0/24"
    assert FORWARDED_IPV4 not in b"".join(bucket_objects("").values()).decode()


def test_cors_allowed_origin_gets_headers(invoke):
    origin = "https://shop.example.com"

    response = invoke(api_gateway_event(make_event(), headers={"origin": origin}))

    assert response["statusCode"] == 200
    assert response["headers"]["access-control-allow-origin"] == origin
    assert "Origin" in response["headers"]["vary"]


def test_cors_not_allowed_origin_is_refused_without_headers(invoke, bucket_objects):
    response = invoke(api_gateway_event(make_event(), headers={"origin": "https://evil.example.net"}))

    assert response["statusCode"] == 403
    assert "access-control-allow-origin" not in response["headers"]
    assert bucket_objects("") == {}


def test_preflight_for_allowed_origin(invoke):
    event = api_gateway_event(
        method="OPTIONS",
        headers={
            "origin": "http://localhost:8080",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )

    response = invoke(event)

    assert response["statusCode"] == 204
    headers = response["headers"]
    assert headers["access-control-allow-origin"] == "http://localhost:8080"
    assert "POST" in headers["access-control-allow-methods"]
    assert "content-type" in headers["access-control-allow-headers"].lower()
    assert int(headers["access-control-max-age"]) > 0


def test_preflight_for_not_allowed_origin(invoke):
    event = api_gateway_event(
        method="OPTIONS",
        headers={"origin": "https://evil.example.net", "access-control-request-method": "POST"},
    )

    response = invoke(event)

    assert response["statusCode"] == 403
    assert "access-control-allow-origin" not in response["headers"]


def test_same_origin_as_the_endpoint_is_allowed(invoke):
    host = "ingest.example.org"
    response = invoke(api_gateway_event(make_event(), headers={"host": host, "origin": f"https://{host}"}))

    assert response["statusCode"] == 200
    assert response["headers"]["access-control-allow-origin"] == f"https://{host}"


def test_other_methods_and_paths(invoke):
    assert invoke(api_gateway_event(method="GET"))["statusCode"] == 405
    assert invoke(api_gateway_event(make_event(), path="/other"))["statusCode"] == 404


def test_structured_logs_have_counts_but_no_payload_or_ip(invoke, caplog):
    secret_value = f"secret-{uuid.uuid4().hex}"
    ingest_logger = logging.getLogger("ingest")
    ingest_logger.addHandler(caplog.handler)  # the ingest logger does not propagate to root
    try:
        invoke(api_gateway_event([make_event(properties={"token": secret_value}), {"bad": secret_value}]))
    finally:
        ingest_logger.removeHandler(caplog.handler)

    lines = [json.loads(JsonFormatter().format(record)) for record in caplog.records]
    stored = [line for line in lines if line["message"] == "events stored"]
    assert len(stored) == 1
    assert stored[0]["accepted"] == 1 and stored[0]["rejected"] == 1 and stored[0]["status"] == 200
    assert stored[0]["accepted_key"].startswith("events/") and stored[0]["rejected_key"].startswith(
        "rejected/"
    )
    text = "\n".join(json.dumps(line) for line in lines)
    assert secret_value not in text and CLIENT_IPV4 not in text


def test_storage_failure_is_500_so_the_client_retries(invoke, ingest_env, monkeypatch):
    from ingest.settings import get_settings

    monkeypatch.setenv("RAW_BUCKET", f"missing-{uuid.uuid4().hex[:8]}")
    get_settings.cache_clear()

    response = invoke(api_gateway_event(make_event()))

    assert response["statusCode"] == 500
    assert "retry" in response["json"]["error"]


def test_s3_client_is_created_once_per_process(invoke):
    from ingest.storage import get_s3_client

    invoke(api_gateway_event(make_event()))
    hits_before = get_s3_client.cache_info().hits
    misses_before = get_s3_client.cache_info().misses
    invoke(api_gateway_event(make_event()))
    invoke(api_gateway_event(make_event()))

    assert get_s3_client.cache_info().misses == misses_before
    assert get_s3_client.cache_info().hits == hits_before + 2
