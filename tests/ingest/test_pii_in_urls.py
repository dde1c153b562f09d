"""Personal data in page URLs never reaches the bucket: the ingest endpoint strips the
query-string (and fragment) keys that carry it (INGEST_PII_QUERY_KEYS, a documented default
list) from page URLs, paths and referrers, in accepted events and in the copy of a rejected one;
everything else in the URL stays byte for byte."""

from __future__ import annotations

import pytest
from ingest_testlib import api_gateway_event, make_event, ndjson_records

from ingest.privacy import scrub_url
from ingest.settings import Settings, SettingsError

SECRETS = ("jane.doe", "example.org", "555-0100", "s3cr3t", "Jane", "Doe", "eyJhbGciOi")


def test_personal_keys_leave_accepted_and_rejected_events(invoke, bucket_objects):
    page = {
        "url": "https://shop.example.com/checkout?step=2&email=jane.doe%40example.org&Phone=555-0100"
        "&utm_source=news#token=eyJhbGciOi&tab=1",
        "path": "/checkout?Password=s3cr3t",
        "title": "Checkout",
        "referrer": "https://mail.example.net/open?first_name=Jane&last_name=Doe&e-mail=jane.doe@example.org&id=7",
    }
    good = make_event(page=page)
    bad = make_event(page=page, event_name="")  # rejected: its copy in rejected/ is scrubbed too

    response = invoke(api_gateway_event([good, bad]))

    assert response["statusCode"] == 200
    assert (response["json"]["accepted"], response["json"]["rejected"]) == (1, 1)
    everything = b"".join(bucket_objects("").values()).decode()
    for secret in SECRETS:
        assert secret not in everything, secret
    [stored] = ndjson_records(bucket_objects("events/"))
    assert stored["page"] == {
        "url": "https://shop.example.com/checkout?step=2&utm_source=news#tab=1",
        "path": "/checkout",
        "title": "Checkout",
        "referrer": "https://mail.example.net/open?id=7",
    }
    [rejected] = ndjson_records(bucket_objects("rejected/"))
    assert rejected["event"]["page"] == stored["page"]
    assert rejected["event"]["event_id"] == bad["event_id"]


def test_the_key_list_is_a_setting(invoke, bucket_objects, monkeypatch):
    from ingest.settings import get_settings

    monkeypatch.setenv("INGEST_PII_QUERY_KEYS", "coupon, Email")
    get_settings.cache_clear()
    url = "https://shop.example.com/?coupon=JANE10&email=a%40b.c&phone=555-0100"
    invoke(api_gateway_event(make_event(page={"url": url, "path": "/", "title": "t", "referrer": None})))
    [stored] = ndjson_records(bucket_objects("events/"))
    assert stored["page"]["url"] == "https://shop.example.com/?phone=555-0100"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://s.example/p?a=1&b=2", "https://s.example/p?a=1&b=2"),
        ("https://s.example/p?email=x", "https://s.example/p"),
        ("https://s.example/p?EMAIL=x&a=%20y+z", "https://s.example/p?a=%20y+z"),
        ("https://s.example/p?e%2Dmail=x&a=1", "https://s.example/p?a=1"),
        ("https://s.example/p?name&a", "https://s.example/p?a"),
        ("https://s.example/p?a=1#section-2", "https://s.example/p?a=1#section-2"),
        ("https://s.example/p#name=x", "https://s.example/p"),
        ("https://s.example/p?username=kept", "https://s.example/p?username=kept"),
        ("/p/1?password=x&&q=tv", "/p/1?&q=tv"),
    ],
)
def test_scrub_url(url, expected):
    assert scrub_url(url, Settings(raw_bucket="b").pii_query_keys) == expected


def test_none_keeps_every_key_and_a_bad_key_is_refused():
    assert (
        Settings.from_env({"RAW_BUCKET": "b", "INGEST_PII_QUERY_KEYS": "none"}).pii_query_keys == frozenset()
    )
    with pytest.raises(SettingsError, match="not a query-string key: a b"):
        Settings.from_env({"RAW_BUCKET": "b", "INGEST_PII_QUERY_KEYS": "email,a b"})
