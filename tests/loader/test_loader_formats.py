"""The object reader on its own: what becomes a COPY row, what is rejected and why."""

from __future__ import annotations

import gzip
import io
import json
import re

import pytest
from loader_testlib import ndjson

from loader.formats import MAX_LINE_BYTES, ObjectReader

_UNESCAPE = re.compile(r"\\(.)")


def read_all(body: bytes, **kwargs) -> tuple[list[tuple], ObjectReader]:
    reader = ObjectReader(io.BytesIO(body), bucket="b", key="k", etag="e", load_id="L", **kwargs)
    data = b""
    while chunk := reader.read(1 << 20):
        data += chunk
    rows = []
    for line in data.decode().split("\n")[:-1]:
        payload, bucket, key, number, etag, load_id = line.split("\t")
        # undo COPY text escaping
        payload = _UNESCAPE.sub(
            lambda m: {"t": "\t", "n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), payload
        )
        rows.append((json.loads(payload), bucket, key, int(number), etag, load_id))
    return rows, reader


def reasons(reader: ObjectReader) -> dict:
    return {r.line_number: r.reason for r in reader.stats.rejects}


def test_ndjson_rows_keep_payload_and_line_numbers():
    body = ndjson(0, 3)
    rows, reader = read_all(body)
    assert [r[3] for r in rows] == [1, 2, 3]
    assert rows[0][0] == json.loads(body.splitlines()[0])
    assert rows[0][1:3] == ("b", "k") and rows[0][4:] == ("e", "L")
    assert (reader.stats.lines, reader.stats.events, reader.stats.rejected) == (3, 3, 0)


def test_bad_lines_are_rejected_with_reasons_and_good_lines_kept():
    body = b"\n".join(
        [
            b'{"a": 1}',
            b"not json",
            b"[1, 2]",
            b'"a string"',
            b"",
            b'{"a": "\\u0000"}',
            b'{"a": NaN}',
            b'{"big": ' + b'"' + b"x" * (300 * 1024) + b'"}',
            b'{"a": 2}\r',
            b'{"n": 1e999}',
            b'{"unterminated": ',
        ]
    )
    rows, reader = read_all(body)
    assert [r[3] for r in rows] == [1, 9, 10]
    got = reasons(reader)
    assert got[2].startswith("invalid JSON")
    assert got[3] == "not a JSON object (a JSON array)"
    assert got[4] == "not a JSON object (a JSON string)"
    assert "\\u0000" in got[6]
    assert got[7].startswith("invalid JSON")
    assert got[8] == f"line larger than {MAX_LINE_BYTES} bytes"
    assert got[11].startswith("invalid JSON")
    assert 5 not in got  # a blank line is not an event and not an error
    long_sample = next(r.sample for r in reader.stats.rejects if r.line_number == 8)
    assert len(long_sample) <= 2048


def test_over_long_line_spanning_chunks_is_skipped_in_bounded_memory():
    big = b'{"big": "' + b"y" * (3 * 1024 * 1024) + b'"}'
    body = ndjson(0, 2) + big + b"\n" + ndjson(2, 2)
    rows, reader = read_all(body)
    assert [r[3] for r in rows] == [1, 2, 4, 5]
    assert reasons(reader) == {3: f"line larger than {MAX_LINE_BYTES} bytes"}


@pytest.mark.parametrize("compress", [False, True])
def test_json_array_elements_are_events(compress):
    body = json.dumps([{"e": 1}, {"e": "x\ny"}, 3, {"e": [1, 2]}], indent=2).encode()
    if compress:
        body = gzip.compress(body)
    rows, reader = read_all(body)
    assert [(r[0], r[3]) for r in rows] == [({"e": 1}, 1), ({"e": "x\ny"}, 2), ({"e": [1, 2]}, 4)]
    assert reasons(reader) == {3: "not a JSON object (a JSON number)"}
    assert reader.stats.fmt == "array" and reader.stats.compressed is compress


def test_broken_json_array_keeps_the_elements_before_the_break():
    rows, reader = read_all(b'[{"e": 1}, {"e": 2}, {"e": oops}, {"e": 4}]')
    assert [r[3] for r in rows] == [1, 2]
    assert reader.stats.rejected == 1
    assert "rest of the array was not read" in reader.stats.rejects[0].reason


def test_single_pretty_printed_object_is_one_event():
    rows, reader = read_all(b'{\n  "event_id": "x",\n  "page": {"path": "/"}\n}\n')
    assert [(r[0], r[3]) for r in rows] == [({"event_id": "x", "page": {"path": "/"}}, 1)]
    assert reader.stats.fmt == "object"


def test_multi_member_gzip():
    body = gzip.compress(ndjson(0, 2)) + gzip.compress(ndjson(2, 3))
    rows, reader = read_all(body)
    assert [r[3] for r in rows] == [1, 2, 3, 4, 5]
    assert reader.stats.rejected == 0


def test_truncated_gzip_keeps_complete_lines_and_records_the_truncation():
    full = gzip.compress(ndjson(0, 20000))
    rows, reader = read_all(full[: len(full) // 2])
    assert 0 < len(rows) < 20000
    assert [r[3] for r in rows] == list(range(1, len(rows) + 1))
    assert reader.stats.rejects[-1].line_number is None
    assert "truncated gzip" in reader.stats.rejects[-1].reason


def test_zero_byte_object_is_recorded():
    rows, reader = read_all(b"")
    assert rows == []
    assert [(r.line_number, r.reason) for r in reader.stats.rejects] == [(None, "empty object (0 bytes)")]


def test_copy_row_maps_back_to_file_line():
    body = b'{"a":1}\nbad\n\n{"a":2}\n{"a":3}\n'
    rows, reader = read_all(body)
    assert [r[3] for r in rows] == [1, 4, 5]
    assert [reader.line_for_copy_row(i) for i in (1, 2, 3)] == [1, 4, 5]


def test_escaping_survives_tabs_backslashes_and_unicode():
    obj = {"t": "a\tb", "b": "back\\slash", "u": "é ✓", "nl": "x\ny"}
    rows, _ = read_all(json.dumps(obj, ensure_ascii=False).encode() + b"\n" + b'{"raw":\t1}\n')
    assert rows[0][0] == obj
    assert rows[1][0] == {"raw": 1}


def test_optimistic_mode_leaves_brace_lines_to_postgres_and_checks_the_rest():
    body = b'{"a": 1}\n{not json\n[1]\n  {"b": 2}\n{"c": "\\u0000"}\n'
    rows_sent = []
    reader = ObjectReader(io.BytesIO(body), bucket="b", key="k", etag="e", load_id="L", careful=False)
    while chunk := reader.read():
        rows_sent += [line.split(b"\t")[3] for line in chunk.split(b"\n")[:-1]]
    # "{not json" goes to COPY (jsonb refuses it; the loader then copies the object carefully)
    assert rows_sent == [b"1", b"2", b"4"]
    assert reasons(reader) == {
        3: "not a JSON object (a JSON array)",
        5: "contains \\u0000, which jsonb cannot store",
    }
