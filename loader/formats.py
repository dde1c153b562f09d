"""Turns one raw object's byte stream into PostgreSQL COPY rows, streaming.

The only parsing done is "is this a JSON object": every accepted event is copied
byte for byte into ``payload``. Lines that fail the check become ``Reject`` records
with a reason, so a bad line never blocks the good ones. Memory stays bounded by the
chunk size and the 256 KB line limit, whatever the size of the object.

Formats, detected from the content (not from the key's suffix):
- gzip (magic bytes ``1f 8b``; multi-member streams too), wrapping any of the below;
- newline-delimited JSON, one object per line (the contract's format);
- a JSON array of objects (elements numbered from 1 as "lines");
- a single JSON object spread over several lines (a pretty-printed file).
"""

from __future__ import annotations

import bisect
import codecs
import json
import queue
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

import orjson

MAX_LINE_BYTES = 256 * 1024
"""A line (or array element) larger than this is rejected."""
SAMPLE_BYTES = 2048
"""The part of a rejected line kept in raw.rejected_lines."""
MAX_STORED_REJECTS = 1000
"""Rejects stored per object; further ones are only counted (bounded memory)."""
CHUNK_BYTES = 1 << 20
"""Bytes read from the object at a time."""

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
_WHITESPACE = b" \t\r\n"


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


@dataclass
class Reject:
    line_number: int | None
    reason: str
    sample: str | None


@dataclass
class ObjectStats:
    """What one pass over an object found."""

    lines: int = 0
    events: int = 0
    rejected: int = 0
    rejects: list[Reject] = field(default_factory=list)
    bytes_read: int = 0
    compressed: bool = False
    fmt: str = "ndjson"


def copy_escape(value: bytes) -> bytes:
    """Escape a value for COPY's text format."""
    if b"\\" in value:
        value = value.replace(b"\\", b"\\\\")
    if b"\t" in value:
        value = value.replace(b"\t", b"\\t")
    if b"\n" in value:
        value = value.replace(b"\n", b"\\n")
    if b"\r" in value:
        value = value.replace(b"\r", b"\\r")
    return value


def _escape_keep_newlines(value: bytes) -> bytes:
    """COPY escaping of a block of lines: everything but the newlines that separate them."""
    if b"\\" in value:
        value = value.replace(b"\\", b"\\\\")
    if b"\t" in value:
        value = value.replace(b"\t", b"\\t")
    if b"\r" in value:
        value = value.replace(b"\r", b"\\r")
    return value


def _sample(raw: bytes) -> str:
    return raw[:SAMPLE_BYTES].decode("utf-8", errors="replace").replace("\x00", "\\x00")


def _contains_nul(value) -> bool:
    """True if a decoded JSON value holds U+0000 anywhere (jsonb cannot store it)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in k or _contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_contains_nul(v) for v in value)
    return False


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def check_json_object(raw: bytes) -> str | None:
    """None if ``raw`` is one JSON object PostgreSQL's jsonb accepts, else the reason."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        message = str(exc)
        if "number" not in message:
            return f"invalid JSON: {message}"
        # orjson refuses numbers beyond a double; JSON (and jsonb's numeric) allow them
        try:
            value = json.loads(raw, parse_float=Decimal, parse_constant=_reject_constant)
        except ValueError as exc2:
            return f"invalid JSON: {exc2}"
    if not isinstance(value, dict):
        kind = {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")
        return f"not a JSON object (a JSON {kind})"
    if b"\\u0000" in raw and _contains_nul(value):
        return "contains \\u0000, which jsonb cannot store"
    return None


class TruncatedObject(Exception):
    """The compressed stream ended early or is corrupt."""


def _raw_chunks(body: Readable, stats: ObjectStats) -> Iterator[bytes]:
    while True:
        chunk = body.read(CHUNK_BYTES)
        if not chunk:
            return
        stats.bytes_read += len(chunk)
        yield chunk


def _gunzip(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Streaming gzip decompression (multi-member aware); TruncatedObject on a cut or corrupt stream."""
    decomp = zlib.decompressobj(wbits=31)
    in_member = False
    for chunk in chunks:
        data = chunk
        while data:
            if not in_member:
                if not data.strip(b"\x00"):
                    break  # zero padding after the last member
                in_member = True
            try:
                out = decomp.decompress(data, CHUNK_BYTES)
            except zlib.error as exc:
                raise TruncatedObject(f"corrupt gzip data: {exc}") from exc
            if out:
                yield out
            if decomp.eof:
                data = decomp.unused_data
                decomp = zlib.decompressobj(wbits=31)
                in_member = False
            else:
                data = decomp.unconsumed_tail
                if data and not out:
                    raise TruncatedObject("gzip stream made no progress")
    if in_member:
        out = decomp.flush()
        if out:
            yield out
        if not decomp.eof:
            raise TruncatedObject("truncated gzip stream (ended before its end-of-stream marker)")


class ObjectReader:
    """A file-like reader for ``cursor.copy_expert``: each ``read()`` returns COPY text rows
    ``payload, bucket, object_key, line_number, object_etag, load_id`` for the next chunk.

    ``careful``: check every NDJSON line with a JSON parser. Without it (the loader's first
    attempt at an object) a line that starts with ``{`` goes straight to COPY and PostgreSQL's
    jsonb input does the check; a refusal makes the loader copy the object again carefully.
    ``skip_lines``: line numbers to reject with the given reason (used when PostgreSQL refused
    a row that passed the JSON check, so the object is copied again without it)."""

    def __init__(
        self,
        body: Readable,
        *,
        bucket: str,
        key: str,
        etag: str,
        load_id: str,
        skip_lines: dict[int, str] | None = None,
        careful: bool = True,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self.stats = ObjectStats()
        self.careful = careful
        self.error: BaseException | None = None
        self._skip = skip_lines or {}
        self._on_progress = on_progress
        self._mid = b"\t" + copy_escape(bucket.encode()) + b"\t" + copy_escape(key.encode()) + b"\t"
        self._tail = b"\t" + copy_escape(etag.encode()) + b"\t" + load_id.encode() + b"\n"
        # copy row number -> file line number: breakpoints where the two diverge
        self._row_starts: list[int] = [1]
        self._row_offsets: list[int] = [0]
        self._rows = 0
        self._gen = self._generate(body)

    # --- file-like interface used by psycopg2
    def read(self, size: int = -1) -> bytes:
        try:
            for chunk in self._gen:
                if chunk:
                    return chunk
            return b""
        except BaseException as exc:  # kept so the loader can report the real cause
            self.error = exc
            raise

    readline = read

    def line_for_copy_row(self, row: int) -> int:
        """The file line number of the ``row``-th COPY row (1-based)."""
        i = bisect.bisect_right(self._row_starts, row) - 1
        return row + self._row_offsets[i]

    # --- internals
    def _reject(self, line_number: int | None, reason: str, raw: bytes | None) -> None:
        self.stats.rejected += 1
        if len(self.stats.rejects) < MAX_STORED_REJECTS:
            self.stats.rejects.append(Reject(line_number, reason, None if raw is None else _sample(raw)))

    def _row(self, payload: bytes, line_number: int) -> bytes:
        self._rows += 1
        if self._rows + self._row_offsets[-1] != line_number:
            self._row_starts.append(self._rows)
            self._row_offsets.append(line_number - self._rows)
        return copy_escape(payload) + self._mid + str(line_number).encode() + self._tail

    def _generate(self, body: Readable) -> Iterator[bytes]:
        stats = self.stats
        chunks = _raw_chunks(body, stats)
        first = next(chunks, b"")
        if not first:
            self._reject(None, "empty object (0 bytes)", None)
            return
        stream = _chain(first, chunks)
        if first.startswith(GZIP_MAGIC):
            stats.compressed = True
            stream = _gunzip(stream)
        try:
            yield from self._decode(stream)
        except TruncatedObject as exc:
            self._reject(None, f"{exc}; lines after line {stats.lines} were not read", None)

    def _decode(self, stream: Iterator[bytes]) -> Iterator[bytes]:
        stats = self.stats
        # peek: enough to tell an array / a single multi-line object from NDJSON
        head = b""
        for chunk in stream:
            head += chunk
            if len(head) > MAX_LINE_BYTES:
                break
        at_eof = len(head) <= MAX_LINE_BYTES
        if head.startswith(UTF8_BOM):
            head = head[len(UTF8_BOM) :]
        stripped = head.lstrip(_WHITESPACE)
        if not stripped:
            if at_eof:
                self._reject(None, "no events (only whitespace)", None)
                return
        if stripped.startswith(b"["):
            stats.fmt = "array"
            yield from self._array(_chain(head, stream))
            return
        if at_eof and stripped.startswith(b"{"):
            first_line = stripped.split(b"\n", 1)[0]
            if b"\n" in stripped.rstrip(_WHITESPACE) and check_json_object(first_line) is not None:
                if check_json_object(stripped) is None:
                    stats.fmt = "object"
                    stats.lines = 1
                    stats.events = 1
                    yield self._row(stripped.rstrip(_WHITESPACE), 1)
                    return
        yield from self._ndjson(_chain(head, stream))

    def _ndjson(self, stream: Iterator[bytes]) -> Iterator[bytes]:
        """Newline-delimited JSON. The hot loop: per chunk, escape once for COPY and split, then
        per line one ``orjson.loads``; anything unusual takes the careful path (``_check_line``)."""
        stats = self.stats
        loads, decode_error = orjson.loads, orjson.JSONDecodeError
        mid, tail, skip, careful = self._mid, self._tail, self._skip, self.careful
        carry = b""
        skipping_long = False
        n = 0
        for chunk in stream:
            if skipping_long:
                cut = chunk.find(b"\n")
                if cut < 0:
                    continue  # still inside the over-long line
                skipping_long = False
                chunk = chunk[cut + 1 :]
                carry = b""
            data = carry + chunk if carry else chunk
            last = data.rfind(b"\n")
            if last < 0:
                carry = data
            else:
                carry = data[last + 1 :]
                body = data[:last]
                raw_lines = body.split(b"\n")
                esc_lines = _escape_keep_newlines(body).split(b"\n")
                out: list[bytes] = []
                append = out.append
                events = 0
                for i, line in enumerate(raw_lines):
                    n += 1
                    reason = None
                    if not careful:
                        # optimistic: a line that starts with "{" and that jsonb accepts is a JSON
                        # object; PostgreSQL checks the rest while parsing it anyway. If it refuses
                        # a row, the loader copies the object again with careful=True.
                        if line[:1] != b"{" or len(line) > MAX_LINE_BYTES or b"\\u0000" in line or n in skip:
                            reason = self._check_line(line, n)
                    else:
                        try:
                            value = loads(line)
                        except decode_error:
                            reason = self._check_line(line, n)
                        else:
                            if (
                                type(value) is not dict
                                or len(line) > MAX_LINE_BYTES
                                or n in skip
                                or (b"\\u0000" in line and _contains_nul(value))
                            ):
                                reason = self._check_line(line, n)
                    if reason is None:
                        self._rows += 1
                        if self._rows + self._row_offsets[-1] != n:
                            self._row_starts.append(self._rows)
                            self._row_offsets.append(n - self._rows)
                        append(esc_lines[i])
                        append(mid)
                        append(b"%d" % n)
                        append(tail)
                        events += 1
                    elif reason:
                        self._reject(n, reason, line)
                stats.lines = n
                stats.events += events
                if events:
                    yield b"".join(out)
                    if self._on_progress:
                        self._on_progress(events)
            if len(carry) > MAX_LINE_BYTES:
                n += 1
                self._reject(n, f"line larger than {MAX_LINE_BYTES} bytes", carry)
                carry = b""
                skipping_long = True
                stats.lines = n
        if carry and not skipping_long:
            n += 1
            reason = self._check_line(carry, n)
            if reason is None:
                stats.events += 1
                yield self._row(carry, n)
                if self._on_progress:
                    self._on_progress(1)
            elif reason:
                self._reject(n, reason, carry)
        stats.lines = n

    def _check_line(self, line: bytes, n: int) -> str | None:
        """None: load it; "": blank, ignore; otherwise the reject reason."""
        if n in self._skip:
            return self._skip[n]
        if len(line) > MAX_LINE_BYTES:
            return f"line larger than {MAX_LINE_BYTES} bytes"
        if n == 1 and line.startswith(UTF8_BOM):
            line = line[len(UTF8_BOM) :]
        if not line.strip(_WHITESPACE):
            return ""
        if line[-1:] == b"\r":
            line = line[:-1]
        return check_json_object(line)

    def _array(self, stream: Iterator[bytes]) -> Iterator[bytes]:
        """Stream the elements of a top-level JSON array."""
        stats = self.stats
        decoder = json.JSONDecoder(parse_constant=_reject_constant)
        utf8 = codecs.getincrementaldecoder("utf-8")("strict")
        buf = ""
        pos = 0
        eof = False
        n = 0
        state = "start"  # start -> value -> sep -> value ... -> end

        def fill() -> bool:
            nonlocal buf, pos, eof
            for chunk in stream:
                buf = buf[pos:] + utf8.decode(chunk)
                pos = 0
                return True
            if not eof:
                buf = buf[pos:] + utf8.decode(b"", final=True)
                pos = 0
                eof = True
            return False

        def skip_ws() -> bool:
            nonlocal pos
            while True:
                while pos < len(buf) and buf[pos] in " \t\r\n\ufeff":
                    pos += 1
                if pos < len(buf):
                    return True
                if not fill():
                    return pos < len(buf)

        try:
            while True:
                if not skip_ws():
                    if state != "end":
                        self._reject(None, f"JSON array not closed after element {n}", None)
                    break
                ch = buf[pos]
                if state == "start":
                    pos += 1  # the "["
                    state = "first"
                    continue
                if state == "end":
                    self._reject(None, f"content after the JSON array at element {n}", None)
                    break
                if state in ("first", "sep") and ch == "]":
                    pos += 1
                    state = "end"
                    continue
                if state == "sep":
                    if ch != ",":
                        self._reject(None, f"expected ',' or ']' after element {n}", None)
                        break
                    pos += 1
                    state = "value"
                    continue
                # a value
                while True:
                    try:
                        value, end = decoder.raw_decode(buf, pos)
                        if end == len(buf) and not eof and isinstance(value, int | float):
                            raise ValueError("number may continue")
                        break
                    except ValueError as exc:
                        if len(buf) - pos > MAX_LINE_BYTES:
                            n += 1
                            raise _ArrayAbort(n, f"element larger than {MAX_LINE_BYTES} bytes") from exc
                        if not fill():
                            n += 1
                            raise _ArrayAbort(n, f"invalid JSON: {exc}") from exc
                n += 1
                raw = buf[pos:end].encode("utf-8")
                pos = end
                state = "sep"
                stats.lines = n
                if n in self._skip:
                    self._reject(n, self._skip[n], raw)
                elif len(raw) > MAX_LINE_BYTES:
                    self._reject(n, f"element larger than {MAX_LINE_BYTES} bytes", raw)
                elif not isinstance(value, dict):
                    self._reject(n, check_json_object(raw) or "not a JSON object", raw)
                elif "\\u0000" in buf[pos - len(raw) : pos] and _contains_nul(value):
                    self._reject(n, "contains \\u0000, which jsonb cannot store", raw)
                else:
                    stats.events += 1
                    yield self._row(raw, n)
                    if self._on_progress:
                        self._on_progress(1)
        except _ArrayAbort as abort:
            stats.lines = abort.element
            self._reject(abort.element, f"{abort.reason}; the rest of the array was not read", None)
        except UnicodeDecodeError as exc:
            self._reject(n + 1, f"not valid UTF-8: {exc}; the rest of the array was not read", None)


class _ArrayAbort(Exception):
    def __init__(self, element: int, reason: str) -> None:
        super().__init__(reason)
        self.element = element
        self.reason = reason


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


class Prefetcher:
    """Reads ahead of ``copy_expert`` in a background thread, so that checking and escaping
    the next chunks (and reading them from S3) overlaps with PostgreSQL ingesting the current
    one. At most ``depth`` chunks wait in the queue: memory stays bounded."""

    _DONE = object()

    def __init__(self, reader: ObjectReader, depth: int = 4) -> None:
        self.reader = reader
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loader-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = self.reader.read()
                if not chunk:
                    self._put(self._DONE)
                    return
                self._put(chunk)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(exc)

    def _put(self, item) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def read(self, size: int = -1) -> bytes:
        item = self._queue.get()
        if item is self._DONE:
            self._queue.put(self._DONE)  # every later read sees the end too
            return b""
        if isinstance(item, BaseException):
            raise item
        return item

    readline = read

    def close(self) -> None:
        """Stop the reader thread (after a failure, COPY stops reading early)."""
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=30)
