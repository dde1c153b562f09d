"""Loader runs against the test PostgreSQL and the test moto S3: what gets loaded, once."""

from __future__ import annotations

import gzip
import json
import logging

import pytest
from loader_testlib import HOUR_PREFIX, ndjson


def count_events(query) -> int:
    return query("select count(*) from raw.clickstream_events")[0][0]


def test_run_loads_every_line_with_its_provenance(put, load, query, loader_env):
    etag = put(HOUR_PREFIX + "a.json", ndjson(0, 100))
    summary = load()
    assert (summary.status, summary.objects, summary.events, summary.rejects) == ("succeeded", 1, 100, 0)
    rows = query(
        "select bucket, object_key, object_etag, load_id::text, count(*), min(line_number), max(line_number),"
        " count(distinct payload->>'event_id') from raw.clickstream_events group by 1, 2, 3, 4"
    )
    assert rows == [
        (loader_env["RAW_BUCKET"], HOUR_PREFIX + "a.json", etag, summary.load_id, 100, 1, 100, 100)
    ]
    payload = query("select payload from raw.clickstream_events where line_number = 1")[0][0]
    assert payload == json.loads(ndjson(0, 1))
    manifest = query(
        "select object_key, object_etag, object_size, lines, events_loaded, lines_rejected from raw.load_manifest"
    )
    assert manifest == [(HOUR_PREFIX + "a.json", etag, len(ndjson(0, 100)), 100, 100, 0)]
    run = query("select status, objects, events, rejects, finished_at is not null from raw.load_runs")
    assert run == [("succeeded", 1, 100, 0, True)]


@pytest.mark.parametrize("workers", [1, 4])
def test_repeated_run_loads_nothing_twice(put, load, query, workers):
    put(HOUR_PREFIX + "a.json", ndjson(0, 50))
    put("events/2024/05/01/11/b.json.gz", gzip.compress(ndjson(50, 50)))
    first = load(workers=workers)
    second = load(workers=workers)
    assert (first.objects, first.events) == (2, 100)
    assert (second.objects, second.events, second.status) == (0, 0, "succeeded")
    assert count_events(query) == 100
    assert query("select count(distinct (object_key, line_number)) from raw.clickstream_events") == [(100,)]
    assert query("select count(*) from raw.load_runs where status = 'succeeded'") == [(2,)]


def test_late_object_in_an_already_processed_hour_is_loaded(put, load, query):
    put(HOUR_PREFIX + "a.json", ndjson(0, 10))
    assert load().events == 10
    put(HOUR_PREFIX + "late.json", ndjson(10, 5))
    late = load()
    assert (late.objects, late.events) == (1, 5)
    assert query("select object_key, count(*) from raw.clickstream_events group by 1 order by 1") == [
        (HOUR_PREFIX + "a.json", 10),
        (HOUR_PREFIX + "late.json", 5),
    ]


def test_changed_etag_is_reported_and_not_reloaded(put, load, query, caplog):
    first_etag = put(HOUR_PREFIX + "a.json", ndjson(0, 10))
    load()
    put(HOUR_PREFIX + "a.json", ndjson(100, 12))
    with caplog.at_level(logging.WARNING, logger="loader"):
        again = load()
    assert (again.objects, again.events, again.etag_changes) == (0, 0, 1)
    assert any(
        "changed after it was loaded" in r.getMessage() and HOUR_PREFIX + "a.json" in r.getMessage()
        for r in caplog.records
    )
    assert count_events(query) == 10
    assert query("select object_etag from raw.load_manifest") == [(first_etag,)]
    assert query("select etag_changes from raw.load_runs order by started_at desc limit 1") == [(1,)]


def test_bad_content_is_recorded_with_reasons_while_good_lines_load(put, load, query):
    good = ndjson(0, 3)
    lines = good.splitlines()
    mixed = b"\n".join(
        [
            lines[0],
            b"{not json",
            b"[1, 2, 3]",
            b"42",
            b'{"big": "' + b"x" * (300 * 1024) + b'"}',
            lines[1],
            lines[2],
        ]
    )
    put(HOUR_PREFIX + "mixed.ndjson", mixed)
    full = gzip.compress(ndjson(10, 5000))
    put(HOUR_PREFIX + "truncated.json.gz", full[: len(full) // 2])
    put(HOUR_PREFIX + "empty.json", b"")
    put(HOUR_PREFIX + "array.json", json.dumps([{"e": 1}, "no", {"e": 2}]).encode())
    put(HOUR_PREFIX + "zz-good.jsonl", ndjson(20000, 4))

    summary = load()
    assert summary.status == "succeeded" and summary.failed_objects == 0
    assert summary.objects == 5

    rejected = query(
        "select object_key, line_number, reason, length(line) from raw.rejected_lines order by 1, 2"
    )
    by_key = {}
    for key, line, reason, length in rejected:
        by_key.setdefault(key.rsplit("/", 1)[1], []).append((line, reason, length))
    mixed_rejects = {line: reason for line, reason, _ in by_key["mixed.ndjson"]}
    assert set(mixed_rejects) == {2, 3, 4, 5}
    assert mixed_rejects[2].startswith("invalid JSON")
    assert mixed_rejects[3] == "not a JSON object (a JSON array)"
    assert mixed_rejects[4] == "not a JSON object (a JSON number)"
    assert mixed_rejects[5] == "line larger than 262144 bytes"
    assert max(length for _, _, length in by_key["mixed.ndjson"]) <= 2048  # the stored line is cut
    assert by_key["empty.json"] == [(None, "empty object (0 bytes)", None)]
    assert by_key["truncated.json.gz"][-1][0] is None
    assert "truncated gzip" in by_key["truncated.json.gz"][-1][1]
    assert by_key["array.json"] == [(2, "not a JSON object (a JSON string)", 4)]

    loaded = dict(
        query("select split_part(object_key, '/', 6), count(*) from raw.clickstream_events group by 1")
    )
    assert loaded["mixed.ndjson"] == 3
    assert loaded["array.json"] == 2
    assert loaded["zz-good.jsonl"] == 4
    assert 0 < loaded["truncated.json.gz"] < 5000
    manifest = dict(
        query(
            "select split_part(object_key, '/', 6), (events_loaded, lines_rejected)::text from raw.load_manifest"
        )
    )
    assert manifest["mixed.ndjson"] == "(3,4)"
    assert manifest["empty.json"] == "(0,1)"
    # the recorded objects are not retried
    assert load().objects == 0


def test_only_the_window_is_loaded(put, load, query):
    put(HOUR_PREFIX + "in.json", ndjson(0, 2))
    put("events/2024/05/03/00/out.json", ndjson(2, 2))
    put("events/not-an-hour/x.json", ndjson(4, 2))
    put(HOUR_PREFIX + "notes.txt", b"not an event file")
    assert load().events == 2
    from loader.load import parse_moment

    backfill = load(since=parse_moment("2024-05-03T00:30:00Z"), until=parse_moment("2024-05-03T00:59:00Z"))
    assert backfill.events == 2
    assert query("select count(*) from raw.load_manifest") == [(2,)]


def test_a_row_postgres_refuses_is_rejected_and_the_rest_of_the_object_loads(put, load, query):
    # valid JSON objects that the table refuses (here: a check constraint an operator added)
    query(
        "create schema raw; create table raw.clickstream_events (payload jsonb not null, bucket text not null,"
        " object_key text not null, line_number integer not null, object_etag text not null,"
        " load_id uuid not null, loaded_at timestamptz not null default now(),"
        " constraint no_poison check (payload->>'poison' is null))"
    )
    body = b"\n".join(
        [
            *ndjson(0, 2).splitlines(),
            b'{"poison": 1}',
            b"bad json",
            b'{"poison": 2}',
            *ndjson(2, 2).splitlines(),
        ]
    )
    put(HOUR_PREFIX + "poisoned.json", body)
    summary = load()
    assert (summary.status, summary.events, summary.rejects, summary.failed_objects) == ("succeeded", 4, 3, 0)
    refused = query("select line_number, reason from raw.rejected_lines order by 1")
    assert [line for line, _ in refused] == [3, 4, 5]
    assert refused[0][1].startswith("refused by PostgreSQL") and "no_poison" in refused[0][1]
    assert refused[1][1].startswith("invalid JSON")
    assert query("select array_agg(line_number order by line_number) from raw.clickstream_events") == [
        ([1, 2, 6, 7],)
    ]
