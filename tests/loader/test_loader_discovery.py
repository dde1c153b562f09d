"""Discovery: the hour prefixes of a window, the window's bounds, and reading only the
version of an object that was listed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from loader_testlib import HOUR_PREFIX, ndjson

from loader.load import parse_moment
from loader.sources import ObjectChanged, ObjectInfo, S3Source, make_s3_client, window_prefixes


def test_short_window_is_listed_hour_by_hour():
    prefixes = window_prefixes(
        "events/", parse_moment("2024-05-01T22:30:00Z"), parse_moment("2024-05-02T01:05Z")
    )
    assert prefixes == [
        "events/2024/05/01/22/",
        "events/2024/05/01/23/",
        "events/2024/05/02/00/",
        "events/2024/05/02/01/",
    ]


def test_long_window_is_listed_by_whole_days_and_the_partial_hours_at_the_ends():
    prefixes = window_prefixes(
        "events/", parse_moment("2024-05-01T22:00Z"), parse_moment("2024-05-05T01:00Z")
    )
    assert prefixes == [
        "events/2024/05/01/22/",
        "events/2024/05/01/23/",
        "events/2024/05/02/",
        "events/2024/05/03/",
        "events/2024/05/04/",
        "events/2024/05/05/00/",
        "events/2024/05/05/01/",
    ]


def test_moments_are_utc_and_a_bare_end_date_covers_the_day():
    assert parse_moment("2024-05-01") == datetime(2024, 5, 1, tzinfo=UTC)
    assert parse_moment("2024-05-01", end=True) == datetime(2024, 5, 1, 23, 59, 59, 999999, tzinfo=UTC)
    assert parse_moment("2024-05-01T12:00:00+02:00") == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert parse_moment("2024-05-01T12:00") == datetime(2024, 5, 1, 12, tzinfo=UTC)
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_moment("yesterday")


def test_an_object_replaced_after_listing_is_not_read(loader_env, put):
    put(HOUR_PREFIX + "a.json", ndjson(0, 3))
    source = S3Source(loader_env["RAW_BUCKET"], "events/", make_s3_client())
    listed = list(source.list(HOUR_PREFIX))
    assert [o.key for o in listed] == [HOUR_PREFIX + "a.json"]
    body = source.open(listed[0])
    assert body.read(-1) == ndjson(0, 3)
    body.close()
    put(HOUR_PREFIX + "a.json", ndjson(10, 3))
    stale = ObjectInfo(listed[0].key, listed[0].etag, listed[0].size, listed[0].last_modified)
    with pytest.raises(ObjectChanged):
        source.open(stale)
