"""Ingest inside its time limit: with S3 or Firehose slow (the fault proxy holds requests 5 s
in front of the test moto server), the handler answers a clean 503 with Retry-After well inside
its budget, instead of being killed by the Lambda / API Gateway timeout; what the slow service
completes later is whole, never half-written; a single slow answer is retried in time."""

from __future__ import annotations

import time

import pytest
from fault_proxy import FaultProxy
from ingest_testlib import LambdaContext, api_gateway_event, make_event, whole_ndjson_records

from ingest.budget import MIN_ATTEMPT_SECONDS, BudgetExhausted, Deadline
from ingest.destinations import get_destinations
from ingest.settings import Settings, SettingsError, get_settings
from ingest.storage import default_timeouts

SLOW_SECONDS = 5.0
BUDGET_SECONDS = 2.0
MARGIN_SECONDS = 0.5
# the answer must come before the Lambda is killed: the budget plus the margin the function keeps
# for answering (INGEST_TIME_MARGIN_SECONDS), which also absorbs a busy machine's overshoot of the
# budget itself (measured 0.42 s with the Spark tests running beside these); the slow service
# would have taken SLOW_SECONDS
TIME_LEFT_SECONDS = BUDGET_SECONDS + MARGIN_SECONDS


@pytest.fixture
def slow_proxy(ingest_env, monkeypatch):
    """Every AWS call of the handler goes through a fault proxy in front of the moto server."""
    with FaultProxy(ingest_env["AWS_ENDPOINT_URL"]) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        get_settings.cache_clear()
        yield proxy


def budget_of(seconds: float, monkeypatch, how: str) -> LambdaContext | None:
    """A budget of ``seconds``, from the Lambda context's remaining time or from the setting."""
    if how == "lambda context":
        monkeypatch.setenv("INGEST_TIME_MARGIN_SECONDS", str(MARGIN_SECONDS))
        get_settings.cache_clear()
        return LambdaContext(seconds + MARGIN_SECONDS)
    monkeypatch.setenv("INGEST_TIME_BUDGET_SECONDS", str(seconds))
    get_settings.cache_clear()
    return None


# ---------------------------------------------------------------- the budget itself


def test_budget_is_the_setting_or_less_when_the_lambda_has_less_time_left():
    settings = Settings(raw_bucket="b", time_budget_seconds=8.0, time_margin_seconds=1.0)

    assert Deadline.for_request(settings).budget == 8.0
    assert Deadline.for_request(settings, LambdaContext(30.0)).budget == 8.0
    assert 3.8 < Deadline.for_request(settings, LambdaContext(5.0)).budget <= 4.0
    assert Deadline.for_request(settings, LambdaContext(0.5)).budget == 0.0


def test_each_attempt_s_timeouts_fit_in_the_time_left():
    for left in (MIN_ATTEMPT_SECONDS + 0.01, 0.7, 1.0, 1.7, 2.0, 3.0, 8.0):
        timeouts = Deadline(left).attempt_timeouts(read_timeout=2.0)
        assert timeouts.connect + timeouts.read <= left, (left, timeouts)
        assert timeouts.connect <= 1.0 and timeouts.read <= 2.0
    with pytest.raises(BudgetExhausted):
        Deadline(MIN_ATTEMPT_SECONDS - 0.01).attempt_timeouts(read_timeout=2.0)


def test_clients_have_bounded_timeouts_and_leave_retrying_to_the_budget(ingest_env, firehose_stream):
    destinations = get_destinations(get_settings())
    usual = default_timeouts(get_settings())

    for client in (destinations.s3.client(usual), destinations.firehose.client(usual)):
        config = client.meta.config
        assert (config.connect_timeout, config.read_timeout) == (1.0, 2.0)
        assert config.retries["total_max_attempts"] == 1  # retry_within decides about another attempt


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("INGEST_TIME_BUDGET_SECONDS", "soon", "must be a number of seconds"),
        ("INGEST_TIME_BUDGET_SECONDS", "0.1", "at least 0.5"),
        ("INGEST_TIME_MARGIN_SECONDS", "-1", "at least 0.0"),
        ("INGEST_ATTEMPT_TIMEOUT_SECONDS", "nan", "at least 0.25"),
        ("INGEST_MAX_ATTEMPTS", "0", "between 1 and 10"),
        ("INGEST_MAX_ATTEMPTS", "2.5", "whole number"),
    ],
)
def test_bad_budget_settings_are_refused_with_a_clear_message(name, value, message):
    with pytest.raises(SettingsError, match=message) as error:
        Settings.from_env({"RAW_BUCKET": "b", name: value})
    assert name in str(error.value)


# ---------------------------------------------------------------- slow services


@pytest.mark.parametrize("how", ["lambda context", "configured budget"])
def test_slow_s3_is_a_503_inside_the_budget_and_nothing_half_written(
    invoke, slow_proxy, bucket_objects, monkeypatch, how
):
    context = budget_of(BUDGET_SECONDS, monkeypatch, how)
    slow_proxy.delay(SLOW_SECONDS, method="PUT")
    events = [make_event() for _ in range(3)]

    started = time.monotonic()
    response = invoke(api_gateway_event(events), context)
    elapsed = time.monotonic() - started

    assert response["statusCode"] == 503
    assert elapsed < TIME_LEFT_SECONDS, f"answered after {elapsed:.2f}s"
    assert int(response["headers"]["retry-after"]) > 0
    assert "retry with the same event_ids" in response["json"]["error"]
    assert slow_proxy.count("PUT") >= 1
    # the slow S3 finishes the held PUTs later: every attempt wrote the same key with the same
    # body, so there is exactly one object, whole
    slow_proxy.wait_idle()
    objects = bucket_objects("")
    assert len(objects) == 1, list(objects)
    assert [r["event_id"] for r in whole_ndjson_records(objects)] == [e["event_id"] for e in events]


def test_slow_firehose_is_a_503_inside_the_budget_and_nothing_half_written(
    invoke, firehose_stream, slow_proxy, bucket_objects, monkeypatch
):
    context = budget_of(BUDGET_SECONDS, monkeypatch, "lambda context")
    slow_proxy.delay(SLOW_SECONDS, method="POST")
    events = [make_event() for _ in range(3)]

    started = time.monotonic()
    response = invoke(api_gateway_event(events), context)
    elapsed = time.monotonic() - started

    assert response["statusCode"] == 503
    assert elapsed < TIME_LEFT_SECONDS, f"answered after {elapsed:.2f}s"
    assert int(response["headers"]["retry-after"]) > 0
    # Firehose takes the held calls later: whole records only, each a copy of the same events
    # (the client's retry adds one more; the warehouse keeps one per event_id)
    slow_proxy.wait_idle()
    objects = bucket_objects("events/")
    assert len(objects) >= 1, "Firehose delivered nothing"
    for body in objects.values():
        records = whole_ndjson_records({"object": body})
        assert [r["event_id"] for r in records] == [e["event_id"] for e in events]


def test_one_slow_answer_is_retried_and_the_request_succeeds_in_time(
    invoke, slow_proxy, bucket_objects, monkeypatch
):
    monkeypatch.setenv("INGEST_TIME_BUDGET_SECONDS", "4")
    get_settings.cache_clear()
    slow_proxy.delay(SLOW_SECONDS, method="PUT", times=1)
    events = [make_event() for _ in range(2)]

    started = time.monotonic()
    response = invoke(api_gateway_event(events))
    elapsed = time.monotonic() - started

    assert response["statusCode"] == 200
    assert elapsed < 4.0
    assert slow_proxy.count("PUT") == 2
    slow_proxy.wait_idle()
    objects = bucket_objects("events/")
    assert len(objects) == 1  # the held first attempt completes later with the same key and body
    assert [r["event_id"] for r in whole_ndjson_records(objects)] == [e["event_id"] for e in events]
