"""Firehose mode: accepted events go to a Direct PUT delivery stream (moto's, on the test moto
server, delivering to the test bucket) with PutRecordBatch; refused records are sent again and a
refusal that outlasts the retries is a 503 the client retries, never a silent drop. The fault
proxy (fault_proxy.py) makes the per-record failures moto does not."""

from __future__ import annotations

import json
import logging

import pytest
from fault_proxy import FaultProxy
from ingest_testlib import api_gateway_event, make_event, whole_ndjson_records

from ingest.budget import Deadline
from ingest.firehose import (
    MAX_BATCH_BYTES,
    MAX_BATCH_RECORDS,
    MAX_RECORD_BYTES,
    FirehoseWriter,
    batches,
    pack_records,
)
from ingest.logs import JsonFormatter
from ingest.settings import Settings, get_settings
from ingest.storage import ndjson_line


def event_ids(records) -> list[str]:
    return sorted(r["event_id"] for r in records)


@pytest.fixture
def firehose_via_proxy(ingest_env, firehose_stream, monkeypatch):
    """The handler's Firehose calls go through a fault proxy in front of the moto server (its
    S3 writes, the rejected events, go straight to moto)."""
    with FaultProxy(ingest_env["AWS_ENDPOINT_URL"]) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_FIREHOSE", proxy.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", ingest_env["AWS_ENDPOINT_URL"])
        get_settings.cache_clear()
        yield proxy


@pytest.fixture
def captured_logs(caplog):
    ingest_logger = logging.getLogger("ingest")
    ingest_logger.addHandler(caplog.handler)  # the ingest logger does not propagate to root
    yield lambda: [json.loads(JsonFormatter().format(r)) for r in caplog.records]
    ingest_logger.removeHandler(caplog.handler)


# ---------------------------------------------------------------- records and batches


def test_lines_are_packed_whole_into_records_within_the_limit():
    lines = [ndjson_line({"n": i, "pad": "x" * 300}) for i in range(100)]

    records = pack_records(lines, max_record_bytes=4096)

    assert all(len(r) <= 4096 and r.endswith(b"\n") for r in records)
    assert b"".join(records) == b"".join(lines)
    per_record = 4096 // len(lines[0])  # the lines are all the same length
    assert [len(r) // len(lines[0]) for r in records] == [per_record] * (100 // per_record) + [
        100 % per_record
    ]


def test_a_request_of_a_few_events_is_one_record():
    lines = [ndjson_line(make_event()) for _ in range(5)]

    assert pack_records(lines) == [b"".join(lines)]


def test_a_line_without_newline_or_over_the_record_limit_is_refused():
    with pytest.raises(ValueError, match="newline"):
        pack_records([b'{"a":1}'])
    with pytest.raises(ValueError, match="does not fit"):
        pack_records([b"x" * MAX_RECORD_BYTES + b"\n"])


def test_batches_stay_within_500_records_and_4_mib_per_call():
    small = [b"{}\n"] * 1201
    big = [b"x" * (900 * 1024) + b"\n"] * 11

    assert [len(b) for b in batches(small)] == [MAX_BATCH_RECORDS, MAX_BATCH_RECORDS, 201]
    big_batches = batches(big)
    assert [len(b) for b in big_batches] == [4, 4, 3]
    assert all(sum(map(len, b)) <= MAX_BATCH_BYTES for b in big_batches)
    assert [r for b in big_batches for r in b] == big


def test_firehose_mode_is_chosen_by_the_stream_name():
    assert Settings.from_env({"RAW_BUCKET": "b"}).mode == "direct"
    assert Settings.from_env({"RAW_BUCKET": "b", "FIREHOSE_STREAM_NAME": " "}).mode == "direct"
    settings = Settings.from_env({"RAW_BUCKET": "b", "FIREHOSE_STREAM_NAME": "clickstream-ingest-events"})
    assert settings.mode == "firehose" and settings.firehose_stream_name == "clickstream-ingest-events"


# ---------------------------------------------------------------- against moto's Firehose


def test_accepted_events_reach_the_bucket_through_the_stream_as_ndjson(
    invoke, firehose_stream, bucket_objects, captured_logs
):
    events = [make_event() for _ in range(5)]
    bad = {"event_name": "page_view"}

    response = invoke(api_gateway_event([*events[:2], bad, *events[2:]]))

    assert response["statusCode"] == 200
    assert (response["json"]["accepted"], response["json"]["rejected"]) == (5, 1)
    delivered = bucket_objects("events/")
    assert len(delivered) == 1  # moto: one object per PutRecordBatch call; one call, one record
    stored = whole_ndjson_records(delivered)
    assert [r["event_id"] for r in stored] == [e["event_id"] for e in events]
    assert all(r["received_at"] and r["properties"]["client_ip_prefix"] for r in stored)
    [rejection] = whole_ndjson_records(bucket_objects("rejected/"))
    assert rejection["index"] == 2 and rejection["event"] == bad
    [line] = [line for line in captured_logs() if line["message"] == "events stored"]
    assert line["mode"] == "firehose" and line["firehose_stream"] == firehose_stream
    assert line["firehose_records"] == 1 and "accepted_key" not in line


def test_records_of_many_requests_concatenate_into_valid_ndjson(invoke, firehose_stream, bucket_objects):
    sent = []
    for size in (1, 3, 7):
        batch = [make_event() for _ in range(size)]
        sent += batch
        assert invoke(api_gateway_event(batch))["statusCode"] == 200

    delivered = bucket_objects("events/")
    # Firehose concatenates records into one object: every record ends with a newline, so the
    # concatenation of all of them is still one event per line
    concatenated = b"".join(delivered.values())
    assert event_ids(whole_ndjson_records({"all": concatenated})) == event_ids(sent)


def test_an_event_over_firehose_s_record_limit_is_rejected_with_its_size(
    invoke, firehose_stream, bucket_objects
):
    small = make_event()
    huge = make_event(properties={"pad": "x" * MAX_RECORD_BYTES})

    response = invoke(api_gateway_event([small, huge]))

    assert response["statusCode"] == 200
    assert (response["json"]["accepted"], response["json"]["rejected"]) == (1, 1)
    [rejection] = response["json"]["rejections"]
    assert rejection["index"] == 1 and "event too large" in rejection["reason"]
    assert [r["event_id"] for r in whole_ndjson_records(bucket_objects("events/"))] == [small["event_id"]]
    [stored_rejection] = whole_ndjson_records(bucket_objects("rejected/"))
    assert stored_rejection["event"]["event_id"] == huge["event_id"]


def test_a_missing_stream_is_a_500_with_a_clear_log(
    invoke, ingest_env, monkeypatch, bucket_objects, captured_logs
):
    monkeypatch.setenv("FIREHOSE_STREAM_NAME", "no-such-stream")
    get_settings.cache_clear()

    response = invoke(api_gateway_event(make_event()))

    assert response["statusCode"] == 500
    assert "retry" in response["json"]["error"]
    [line] = [line for line in captured_logs() if line["message"] == "could not store events"]
    assert "ResourceNotFoundException" in line["exception"]
    assert bucket_objects("events/") == {}


# ---------------------------------------------------------------- refused records


def test_refused_records_are_sent_again_and_land_exactly_once(ingest_env, firehose_via_proxy, bucket_objects):
    proxy = firehose_via_proxy
    proxy.refuse_records(times=1, every=2)  # records 0, 2, 4, 6, 8 of the first call
    lines = [ndjson_line(make_event()) for _ in range(10)]
    writer = FirehoseWriter(get_settings())

    writer.put_records(lines, Deadline(8.0))

    assert proxy.record_counts() == [10, 5]
    stored = whole_ndjson_records(bucket_objects("events/"))
    assert event_ids(stored) == event_ids(json.loads(line) for line in lines)


def test_handler_retries_refused_records_then_answers_200(invoke, firehose_via_proxy, bucket_objects):
    firehose_via_proxy.refuse_records(times=2)
    events = [make_event() for _ in range(4)]

    response = invoke(api_gateway_event(events))

    assert response["statusCode"] == 200
    assert firehose_via_proxy.record_counts() == [1, 1, 1]
    assert event_ids(whole_ndjson_records(bucket_objects("events/"))) == event_ids(events)


def test_a_throttled_call_is_retried(invoke, firehose_via_proxy, bucket_objects):
    firehose_via_proxy.fail_calls(500, "ServiceUnavailableException", times=1)
    events = [make_event(), make_event()]

    response = invoke(api_gateway_event(events))

    assert response["statusCode"] == 200
    assert firehose_via_proxy.record_counts() == [1, 1]
    assert event_ids(whole_ndjson_records(bucket_objects("events/"))) == event_ids(events)


def test_refused_after_the_retries_is_a_503_never_a_silent_drop(
    invoke, firehose_via_proxy, bucket_objects, captured_logs, monkeypatch
):
    monkeypatch.setenv("INGEST_MAX_ATTEMPTS", "3")
    get_settings.cache_clear()
    firehose_via_proxy.refuse_records()

    response = invoke(api_gateway_event([make_event(), make_event()]))

    assert response["statusCode"] == 503
    assert int(response["headers"]["retry-after"]) > 0
    assert "retry with the same event_ids" in response["json"]["error"]
    assert firehose_via_proxy.record_counts() == [1, 1, 1]
    assert bucket_objects("events/") == {}
    [line] = [line for line in captured_logs() if line["message"] == "storage refused events"]
    assert line["status"] == 503 and line["mode"] == "firehose"
    refusals = [line for line in captured_logs() if line["message"] == "firehose refused records"]
    assert len(refusals) == 3 and refusals[0]["error_codes"] == {"ServiceUnavailableException": 1}
