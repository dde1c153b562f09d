"""Copying raw objects into ``raw.clickstream_events``, exactly once.

Small objects (what the ingest endpoint writes: one per request), fetched ahead by
``loader.pipeline``, are committed in batches: one transaction holds a batch's rows, rejected
lines, manifest rows and run counters together, bounded by ``batch_objects`` and
``batch_bytes``.
Objects over a quarter of ``batch_bytes`` stream through COPY one per transaction, as big
files always did. Either way, all of an object or none of it is committed.

A batch that PostgreSQL refuses (a row jsonb will not take, a trigger, a constraint) is rolled
back and its objects are copied again one by one from memory, so one broken object never
blocks the others; an object that cannot be fetched is recorded as failed and left for the
next run. Memory stays bounded by the batch size, not by the data."""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass

import psycopg2
from psycopg2.extras import execute_values

from loader.db import LOCK_CLASS, begin_load_transaction, rollback_quietly
from loader.forget import drop_erased_lines, erased_rejects
from loader.formats import CHUNK_BYTES, ObjectReader, Prefetcher, copy_escape
from loader.progress import Progress
from loader.runs import RunSummary, record_loaded
from loader.sources import ObjectChanged, ObjectInfo, Source

log = logging.getLogger("loader")

COPY_SQL = (
    "copy raw.clickstream_events (payload, bucket, object_key, line_number, object_etag, load_id) from stdin"
)
MAX_PG_REFUSALS = 20
"""Rows PostgreSQL refuses in one object (after our JSON check passed) before giving up on it."""
_COPY_LINE = re.compile(r"COPY clickstream_events, line (\d+)")
_MANIFEST_COLUMNS = (
    "bucket, object_key, object_etag, object_size, lines, events_loaded, lines_rejected, load_id,"
    " object_last_modified, format, compressed, loaded_at"
)


@dataclass(frozen=True)
class BatchLimits:
    objects: int = 500
    bytes: int = 16 << 20
    fetch_concurrency: int = 32

    @property
    def small_object_bytes(self) -> int:
        """Objects up to this size are fetched whole and batched; larger ones stream alone."""
        return max(1, self.bytes // 4)


@dataclass
class Fetched:
    """One object on its way to the database: its bytes (small objects), or nothing yet (a
    large object, streamed when its turn comes), or the error that fetching it raised."""

    obj: ObjectInfo
    data: bytes | None = None
    error: BaseException | None = None
    large: bool = False


@dataclass
class WorkerCounts:
    """What one worker did (merged into the run summary at the end)."""

    summary: RunSummary
    handled: int = 0


# --- copying on one connection


class Copier:
    """Copies objects on one database connection; counts into ``counts.summary``."""

    def __init__(self, source: Source, conn, load_id: str, counts: WorkerCounts, progress: Progress) -> None:
        self.source = source
        self.conn = conn
        self.load_id = load_id
        self.counts = counts
        self.summary = counts.summary
        self.progress = progress

    # --- a batch of small objects, one transaction
    def copy_batch(self, items: list[Fetched]) -> None:
        ready: list[Fetched] = []
        for item in items:
            if isinstance(item.error, ObjectChanged):
                self._changed(item.obj, f"{item.error}: not loaded")
            elif item.error is not None:
                self._failed(item.obj, item.error, None)
            else:
                ready.append(item)
        self._skipped(len(items) - len(ready))
        if not ready:
            return
        bucket = self.source.bucket
        todo: list[Fetched] = []
        readers: list[ObjectReader] = []
        try:
            with self.conn.cursor() as cur:
                stamp = begin_load_transaction(cur)
                keys = [item.obj.key for item in ready]
                cur.execute(
                    "select k, pg_try_advisory_xact_lock(%s, hashtext(%s || '/' || k))"
                    " from unnest(%s::text[]) with ordinality as t(k, i) order by i",
                    (LOCK_CLASS, bucket, keys),
                )
                locked = {k for k, ok in cur.fetchall() if ok}
                cur.execute(
                    "select object_key, object_etag from raw.load_manifest"
                    " where bucket = %s and object_key = any(%s::text[])",
                    (bucket, keys),
                )
                loaded = dict(cur.fetchall())
                for item in ready:
                    key = item.obj.key
                    if key not in locked:
                        self._busy(item.obj)
                    elif key in loaded:
                        if loaded[key] != item.obj.etag:
                            self._changed(
                                item.obj, f"Object {key} changed after it was loaded: not loaded again"
                            )
                    else:
                        todo.append(item)
                if todo:
                    readers = [
                        self._reader(io.BytesIO(item.data), item.obj, {}, careful=False) for item in todo
                    ]
                    cur.copy_expert(COPY_SQL, _Concat(readers), size=CHUNK_BYTES)
                    self._record(cur, [(i.obj, r) for i, r in zip(todo, readers, strict=True)], stamp)
            self.conn.commit()
        except psycopg2.OperationalError:
            if not any(r.error is not None for r in readers):
                raise  # the database went away: the whole run stops
            rollback_quietly(self.conn)
            self._skipped(len(ready) - len(todo))
            self._one_by_one(todo, "reading an object failed")
            return
        except Exception as exc:
            rollback_quietly(self.conn)
            self._skipped(len(ready) - len(todo))
            self._one_by_one(todo, getattr(getattr(exc, "diag", None), "message_primary", None) or str(exc))
            return
        self._skipped(len(ready) - len(todo))
        self._done(list(zip(todo, readers, strict=True)))

    def _skipped(self, n: int) -> None:
        """Objects of a batch handled without loading them (busy, already loaded, changed, failed)."""
        if n:
            self.counts.handled += n
            self.progress.objects_done(n)

    def _one_by_one(self, todo: list[Fetched], why: str) -> None:
        log.info(
            "A batch of %d objects was refused (%s); copying them one by one",
            len(todo),
            why.strip().splitlines()[0] if why.strip() else why,
            extra={"objects": len(todo)},
        )
        for item in todo:
            self.copy_object(item.obj, item.data)

    def _done(self, loaded: list[tuple[Fetched, ObjectReader]]) -> None:
        if not loaded:
            return
        events = rejected = 0
        for item, reader in loaded:
            stats = reader.stats
            self._count(stats)
            events += stats.events
            rejected += stats.rejected
            self._warn_rejects(item.obj, reader)
        self.counts.handled += len(loaded)
        self.progress.objects_done(len(loaded))
        log.info(
            "Loaded %d objects in one transaction: %d events, %d rejected",
            len(loaded),
            events,
            rejected,
            extra={
                "objects": len(loaded),
                "events": events,
                "rejected": rejected,
                "first_key": loaded[0][0].obj.key,
                "last_key": loaded[-1][0].obj.key,
            },
        )

    # --- one object, one transaction (large objects, and a refused batch's objects)
    def copy_object(self, obj: ObjectInfo, data: bytes | None = None) -> str:
        """Returns loaded / busy / already / changed / failed. ``data``: the object's bytes when
        already fetched; otherwise it is streamed from the source."""
        refused: dict[int, str] = {}
        careful = False
        try:
            while True:
                reader_box: list[ObjectReader] = []
                try:
                    return self._copy_one(obj, data, refused, reader_box, careful)
                except ObjectChanged as exc:
                    self.conn.rollback()
                    self._changed(obj, f"{exc}: not loaded")
                    return "changed"
                except (psycopg2.DataError, psycopg2.IntegrityError) as exc:
                    self.conn.rollback()
                    reader = reader_box[0] if reader_box else None
                    match = _COPY_LINE.search(getattr(exc.diag, "context", None) or "")
                    if (
                        reader is None
                        or reader.error is not None
                        or match is None
                        or len(refused) >= MAX_PG_REFUSALS
                    ):
                        return self._failed(obj, exc, reader)
                    if not careful:
                        careful = True
                        log.info(
                            "PostgreSQL refused a row of %s (%s); copying it again, checking every line",
                            obj.key,
                            exc.diag.message_primary,
                            extra={"object_key": obj.key},
                        )
                        continue
                    line = reader.line_for_copy_row(int(match.group(1)))
                    refused[line] = f"refused by PostgreSQL: {exc.diag.message_primary}"
                    log.warning(
                        "PostgreSQL refused line %d of %s (%s); copying the object again without it",
                        line,
                        obj.key,
                        exc.diag.message_primary,
                        extra={"object_key": obj.key, "line_number": line},
                    )
                except psycopg2.OperationalError as exc:
                    reader = reader_box[0] if reader_box else None
                    if reader is None or reader.error is None:
                        raise  # the database went away: the whole run stops
                    # reading the object failed while COPY was streaming it (COPY was cancelled)
                    rollback_quietly(self.conn)
                    return self._failed(obj, exc, reader)
                except Exception as exc:
                    rollback_quietly(self.conn)
                    return self._failed(obj, exc, reader_box[0] if reader_box else None)
        finally:
            self.counts.handled += 1
            self.progress.objects_done()

    def _copy_one(
        self, obj: ObjectInfo, data: bytes | None, refused: dict[int, str], reader_box: list, careful: bool
    ) -> str:
        bucket = self.source.bucket
        with self.conn.cursor() as cur:
            stamp = begin_load_transaction(cur)
            cur.execute(
                "select pg_try_advisory_xact_lock(%s, hashtext(%s))", (LOCK_CLASS, f"{bucket}/{obj.key}")
            )
            if not cur.fetchone()[0]:
                self.conn.rollback()
                self._busy(obj)
                return "busy"
            cur.execute(
                "select object_etag from raw.load_manifest where bucket = %s and object_key = %s",
                (bucket, obj.key),
            )
            row = cur.fetchone()
            if row is not None:
                self.conn.rollback()
                if row[0] != obj.etag:
                    self._changed(obj, f"Object {obj.key} changed after it was loaded: not loaded again")
                    return "changed"
                return "already"
            body = io.BytesIO(data) if data is not None else self.source.open(obj)
            try:
                reader = self._reader(body, obj, refused, careful)
                reader_box.append(reader)
                prefetch = Prefetcher(reader)
                try:
                    cur.copy_expert(COPY_SQL, prefetch, size=CHUNK_BYTES)
                finally:
                    prefetch.close()
            finally:
                body.close()
            self._record(cur, [(obj, reader)], stamp)
        self.conn.commit()
        stats = reader.stats
        self._count(stats)
        log.info(
            "Loaded %s: %d events, %d rejected",
            obj.key,
            stats.events,
            stats.rejected,
            extra={"object_key": obj.key, "events": stats.events, "rejected": stats.rejected},
        )
        self._warn_rejects(obj, reader)
        return "loaded"

    # --- shared steps
    def _reader(self, body, obj: ObjectInfo, refused: dict[int, str], careful: bool) -> ObjectReader:
        return ObjectReader(
            body,
            bucket=self.source.bucket,
            key=obj.key,
            etag=obj.etag,
            load_id=self.load_id,
            skip_lines=refused,
            careful=careful,
            on_progress=self.progress.add_events,
        )

    def _record(self, cur, loaded: list[tuple[ObjectInfo, ObjectReader]], stamp) -> None:
        """Rejected lines, manifest rows and the run's counters, in the load's transaction."""
        bucket = self.source.bucket
        # lines of erased people (python -m loader forget) never come back: dropped in this transaction
        dropped = drop_erased_lines(cur, [obj.key for obj, _ in loaded])
        for obj, reader in loaded:
            reader.stats.events -= dropped.get(obj.key, 0)
        rejects = [
            (bucket, obj.key, r.line_number, r.reason, r.sample, self.load_id)
            for obj, reader in loaded
            for r in reader.stats.rejects
        ]
        if rejects:
            erased = erased_rejects(cur, rejects)
            rejects = [row for row, gone in zip(rejects, erased, strict=True) if not gone]
        if rejects:
            execute_values(
                cur,
                "insert into raw.rejected_lines (bucket, object_key, line_number, reason, line, load_id) values %s",
                rejects,
                page_size=1000,
            )
        # COPY, not INSERT: a batch has hundreds of manifest rows. Per batch: the bucket, the run
        # and the stamp; per object: the rest (COPY text format, \N for NULL).
        head = copy_escape(bucket.encode()) + b"\t"
        tail = f"\t{self.load_id}\t".encode()
        end = b"\t" + stamp.isoformat().encode() + b"\n"
        rows = [
            b"".join(
                (
                    head,
                    copy_escape(obj.key.encode()),
                    b"\t",
                    copy_escape(obj.etag.encode()),
                    b"\t%d\t%d\t%d\t%d" % (obj.size, st.lines, st.events, st.rejected),
                    tail,
                    obj.last_modified.isoformat().encode() if obj.last_modified else b"\\N",
                    b"\t",
                    st.fmt.encode(),
                    b"\tt" if st.compressed else b"\tf",
                    end,
                )
            )
            for obj, st in ((obj, reader.stats) for obj, reader in loaded)
        ]
        cur.copy_expert(
            f"copy raw.load_manifest ({_MANIFEST_COLUMNS}) from stdin",  # noqa: S608 - constant
            io.BytesIO(b"".join(rows)),
        )
        record_loaded(
            cur,
            self.load_id,
            objects=len(loaded),
            events=sum(reader.stats.events for _, reader in loaded),
            rejects=sum(reader.stats.rejected for _, reader in loaded),
        )

    def _count(self, stats) -> None:
        s = self.summary
        s.objects += 1
        s.events += stats.events
        s.lines += stats.lines
        s.rejects += stats.rejected
        s.bytes_read += stats.bytes_read

    def _warn_rejects(self, obj: ObjectInfo, reader: ObjectReader) -> None:
        stats = reader.stats
        if stats.rejected:
            first = stats.rejects[0]
            log.warning(
                "Rejected %d lines in %s (first: line %s, %s)",
                stats.rejected,
                obj.key,
                first.line_number,
                first.reason,
                extra={"object_key": obj.key, "rejected": stats.rejected},
            )

    def _busy(self, obj: ObjectInfo) -> None:
        self.summary.busy_objects += 1
        log.info("Skipping %s: another run is loading it", obj.key, extra={"object_key": obj.key})

    def _changed(self, obj: ObjectInfo, message: str) -> None:
        self.summary.etag_changes += 1
        log.warning("%s", message, extra={"object_key": obj.key})

    def _failed(self, obj: ObjectInfo, exc: BaseException, reader: ObjectReader | None) -> str:
        cause = reader.error if reader is not None and reader.error is not None else exc
        text = str(cause).strip()
        message = f"{type(cause).__name__}: {text.splitlines()[0] if text else ''}"
        self.summary.failed_objects += 1
        self.summary.failures.append({"object_key": obj.key, "error": message})
        log.error(
            "Failed to load %s: %s (rolled back, will be retried by the next run)",
            obj.key,
            message,
            extra={"object_key": obj.key, "error": message},
        )
        return "failed"


class _Concat:
    """COPY input made of several objects' readers, one after another."""

    def __init__(self, readers: list[ObjectReader]) -> None:
        self.readers = readers
        self.index = 0

    def read(self, size: int = -1) -> bytes:
        while self.index < len(self.readers):
            chunk = self.readers[self.index].read()
            if chunk:
                return chunk
            self.index += 1
        return b""

    readline = read
