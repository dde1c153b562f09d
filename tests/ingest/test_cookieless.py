"""Global Privacy Control and Do Not Track at the ingest endpoint, and cookieless counting under a
random salt of the day that is deleted after 48 hours (ingest/cookieless.py), on the test
moto server: what is stored, what is not, and that two days give two unlinkable visitors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from ingest_testlib import CLIENT_IPV4, api_gateway_event, make_event, ndjson_records

from ingest.api import handle_http_event
from ingest.cookieless import SALT_PREFIX
from ingest.destinations import get_destinations
from ingest.settings import Settings, SettingsError, get_settings

DAY = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


@pytest.fixture
def post(ingest_env):
    """post(events, headers, now, source_ip) -> the response, through the real handler."""

    def _post(events, headers=None, now=DAY, source_ip=CLIENT_IPV4):
        settings = get_settings()
        response = handle_http_event(
            api_gateway_event(events, headers=headers, source_ip=source_ip),
            settings,
            get_destinations(settings),
            now=now,
        )
        response["json"] = json.loads(response["body"])
        return response

    return _post


@pytest.fixture
def s3(ingest_env):
    return boto3.client(
        "s3", endpoint_url=ingest_env["AWS_ENDPOINT_URL"], region_name=ingest_env["AWS_REGION"]
    )


def salts(s3, bucket) -> list[str]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=SALT_PREFIX).get("Contents", [])
    return sorted(item["Key"][len(SALT_PREFIX) :] for item in listed)


def shopper(**overrides):
    return make_event(
        anonymous_id="anon-7f3a",
        session_id="sess-7f3a",
        user_id="user-42",
        page={"url": "https://shop.example.com/p/1", "path": "/p/1", "title": "P", "referrer": None},
        # the events are posted on DAY: a timestamp of today would be years ahead of it
        event_timestamp=DAY.isoformat(timespec="milliseconds"),
        **overrides,
    )


@pytest.mark.parametrize("header", [{"sec-gpc": "1"}, {"dnt": "1"}])
def test_a_privacy_signal_stores_only_the_cookieless_form(post, bucket_objects, s3, ingest_env, header):
    sent = [shopper(), shopper()]
    bad = shopper(event_name="")
    response = post([*sent, bad], headers={**header, "user-agent": FIREFOX})

    assert response["statusCode"] == 200
    assert (response["json"]["accepted"], response["json"]["cookieless"]) == (2, 2)
    everything = b"".join(
        [*bucket_objects("events/").values(), *bucket_objects("rejected/").values()]
    ).decode()
    for identifier in ("anon-7f3a", "sess-7f3a", "user-42", "203.0.113"):
        assert identifier not in everything, identifier
    stored = ndjson_records(bucket_objects("events/"))
    assert [s["event_id"] for s in stored] == [e["event_id"] for e in sent]
    visitors = {(s["anonymous_id"], s["session_id"]) for s in stored}
    assert len(visitors) == 1, "one browser, one visitor and one session that day"
    visitor, session = visitors.pop()
    assert visitor.startswith("cl-") and session.startswith("cl-") and visitor != session
    assert all("user_id" not in s and s["properties"] == {"privacy_mode": "cookieless"} for s in stored)
    assert salts(s3, ingest_env["RAW_BUCKET"]) == ["2026-11-30"]


def test_without_a_signal_the_ids_are_kept(post, bucket_objects):
    post([shopper()], headers={"user-agent": FIREFOX, "sec-gpc": "0"})
    [stored] = ndjson_records(bucket_objects("events/"))
    assert (stored["anonymous_id"], stored["user_id"]) == ("anon-7f3a", "user-42")
    assert "privacy_mode" not in stored["properties"]


def test_the_tracker_can_ask_for_cookieless_counting(post, bucket_objects):
    """An event the tracker marks cookieless (no consent: it stores nothing in the browser)."""
    response = post(
        [make_event(anonymous_id="cookieless", session_id="cookieless", event_timestamp=DAY.isoformat())]
    )
    assert response["json"]["cookieless"] == 1
    [stored] = ndjson_records(bucket_objects("events/"))
    assert stored["anonymous_id"].startswith("cl-") and stored["properties"]["privacy_mode"] == "cookieless"


def test_the_same_browser_is_one_visitor_a_day_and_unlinkable_across_days(
    post, bucket_objects, s3, ingest_env
):
    gpc = {"sec-gpc": "1", "user-agent": FIREFOX}
    post([shopper()], headers=gpc, now=DAY)
    post([shopper()], headers=gpc, now=DAY + timedelta(hours=5))
    post([shopper()], headers={**gpc, "user-agent": "Other/1.0"}, now=DAY + timedelta(hours=6))
    post([shopper()], headers=gpc, now=DAY + timedelta(days=1))
    by_day = {}
    for record in ndjson_records(bucket_objects("events/")):
        by_day.setdefault(record["received_at"][:10], []).append(record["anonymous_id"])
    first, second = by_day["2026-11-30"], by_day["2026-12-01"]
    assert first[0] == first[1] != first[2], (
        "same browser the same day: one visitor; another browser: another"
    )
    assert second[0] not in first, "the next day, the same browser is a visitor never seen before"
    assert salts(s3, ingest_env["RAW_BUCKET"]) == ["2026-11-30", "2026-12-01"]

    # the salt of the day before yesterday is deleted when a new day's salt is made
    post([shopper()], headers=gpc, now=DAY + timedelta(days=2))
    assert salts(s3, ingest_env["RAW_BUCKET"]) == ["2026-12-01", "2026-12-02"]


def test_a_second_process_uses_the_salt_the_first_made(post, bucket_objects, ingest_env):
    gpc = {"sec-gpc": "1", "user-agent": FIREFOX}
    post([shopper()], headers=gpc)
    get_destinations.cache_clear()  # a new Lambda execution environment: no salt in memory
    post([shopper()], headers=gpc, now=DAY + timedelta(minutes=1))
    ids = {r["anonymous_id"] for r in ndjson_records(bucket_objects("events/"))}
    assert len(ids) == 1


def test_drop_stores_nothing_for_a_signal(post, bucket_objects, monkeypatch):
    monkeypatch.setenv("INGEST_PRIVACY_SIGNALS", "drop")
    get_settings.cache_clear()
    response = post([shopper(), shopper()], headers={"dnt": "1"})
    assert response["statusCode"] == 200
    assert (response["json"]["accepted"], response["json"]["dropped"]) == (0, 2)
    assert bucket_objects("events/") == {}
    post([shopper()], headers={})
    assert len(ndjson_records(bucket_objects("events/"))) == 1


def test_a_bad_setting_is_refused():
    with pytest.raises(SettingsError, match="INGEST_PRIVACY_SIGNALS must be cookieless or drop"):
        Settings.from_env({"RAW_BUCKET": "b", "INGEST_PRIVACY_SIGNALS": "ignore"})
