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


def test_a_window_of_years_logs_the_prefixes_with_objects_and_one_line_for_the_empty_ones(tmp_path, caplog):
    from loader.discovery import discover_new
    from loader.sources import LocalSource

    for hour in ("2024/05/01/10", "2025/11/24/13"):
        folder = tmp_path / "events" / hour
        folder.mkdir(parents=True)
        (folder / "a.json").write_bytes(ndjson(0, 2))
    source = LocalSource(tmp_path, "events/")
    with caplog.at_level("INFO", logger="loader"):
        new, changed = discover_new(
            source, lambda prefix: {}, parse_moment("2019-10-01"), parse_moment("2026-12-01", end=True)
        )
    assert ([o.key for o in new], changed) == (
        ["events/2024/05/01/10/a.json", "events/2025/11/24/13/a.json"],
        0,
    )
    messages = [r.getMessage() for r in caplog.records]
    assert messages[:2] == [
        "Listing files under prefix events/2024/05/01/",
        "Listing files under prefix events/2025/11/24/",
    ]
    days = (datetime(2026, 12, 1) - datetime(2019, 10, 1)).days + 1
    assert messages[2:] == [
        f"Listed {days - 2} prefixes under events/ with no objects (events/2019/10/01/ to events/2026/12/01/)"
    ]
