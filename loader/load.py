"""One loader run: discover new objects, copy each one into raw.clickstream_events in
its own transaction (rows + manifest row together: all of an object or none of it),
record the run, then ``dbt build``.

Exactly once: an object is loaded under a transaction-scoped advisory lock on its
key, after re-checking the manifest; the manifest's primary key (bucket, object_key)
backs that up. Two concurrent runs therefore split the work instead of doubling it."""

from __future__ import annotations

import logging
import os
import queue
import re
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta

import psycopg2
import psycopg2.errors
from psycopg2.extras import execute_values

from loader import schema
from loader.credentials import describe_target, ensure_pg_env
from loader.formats import CHUNK_BYTES, ObjectReader, Prefetcher
from loader.settings import Settings
from loader.sources import ObjectChanged, ObjectInfo, Source, is_event_file, make_s3_client, parse_source
from loader.sources import window_prefixes as _window_prefixes

log = logging.getLogger("loader")

COPY_SQL = (
    "copy raw.clickstream_events (payload, bucket, object_key, line_number, object_etag, load_id) from stdin"
)
LOCK_CLASS = 0x6C6F6164  # "load": first key of the per-object advisory locks
MAX_PG_REFUSALS = 20
"""Rows PostgreSQL refuses in one object (after our JSON check passed) before giving up on it."""
_COPY_LINE = re.compile(r"COPY clickstream_events, line (\d+)")


class LoaderError(Exception):
    """A fatal problem for the whole run (e.g. the database is unreachable)."""


@dataclass
class RunSummary:
    load_id: str
    source: str
    status: str = "running"
    objects: int = 0
    events: int = 0
    lines: int = 0
    rejects: int = 0
    etag_changes: int = 0
    failed_objects: int = 0
    busy_objects: int = 0
    pending_objects: int = 0
    bytes_read: int = 0
    dbt_status: str | None = None
    models_built: int = 0
    error: str | None = None
    dry_run: bool = False
    seconds: float = 0.0
    failures: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "succeeded" and self.dbt_status != "failed"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["failures"] = out["failures"][:20]
        return out


def parse_moment(text: str, *, end: bool = False) -> datetime:
    """An ISO 8601 date or date-time (UTC unless it says otherwise). A bare date given as
    an end of a window means the end of that day."""
    text = text.strip()
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            moment = datetime(d.year, d.month, d.day, tzinfo=UTC)
            return moment + timedelta(days=1, microseconds=-1) if end else moment
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"not an ISO 8601 date or date-time: {text!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def connect():
    """A connection from libpq's PG* variables; LoaderError with a clear message if unreachable."""
    ensure_pg_env()
    try:
        conn = psycopg2.connect(
            "",
            connect_timeout=int(os.environ.get("PGCONNECT_TIMEOUT", "10")),
            application_name="clickstream-loader",
        )
    except psycopg2.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LoaderError(f"cannot connect to PostgreSQL at {describe_target()}: {first}") from exc
    return conn


class Progress:
    """Objects, events and events/s on a terminal (stderr), at most a few times a second."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.total = 0
        self.done = 0
        self.events = 0
        self.start = time.monotonic()
        self._last = 0.0

    def begin(self, total: int) -> None:
        self.total = total
        self.start = time.monotonic()

    def add_events(self, n: int) -> None:
        self.events += n
        self._show()

    def object_done(self) -> None:
        self.done += 1
        self._show(force=True)

    def finish(self) -> None:
        if self.enabled and self.total:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()

    def _show(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.25:
            return
        self._last = now
        rate = self.events / max(now - self.start, 1e-6)
        sys.stderr.write(
            f"\r\033[K  objects {self.done}/{self.total}  events {self.events:,}  {rate:,.0f} events/s"
        )
        sys.stderr.flush()


class Loader:
    def __init__(self, settings: Settings, source: Source, conn, progress: Progress | None = None) -> None:
        self.settings = settings
        self.source = source
        self.conn = conn
        self.progress = progress or Progress(False)

    # --- discovery
    def discover(self, since: datetime, until: datetime, summary: RunSummary) -> list[ObjectInfo]:
        """Objects in the window that are not in the manifest; changed ETags are reported."""
        new: list[ObjectInfo] = []
        have_manifest = self._manifest_exists()
        kind = "S3 objects" if self.source.describe().startswith("s3://") else "files"
        for prefix in _window_prefixes(self.source.prefix, since, until):
            log.info("Listing %s under prefix %s", kind, prefix, extra={"prefix": prefix})
            listed = [o for o in self.source.list(prefix) if is_event_file(o.key)]
            if not listed:
                continue
            known = self._manifest_etags(prefix) if have_manifest else {}
            for obj in listed:
                etag = known.get(obj.key)
                if etag is None:
                    new.append(obj)
                elif etag != obj.etag:
                    summary.etag_changes += 1
                    log.warning(
                        "Object %s changed after it was loaded (ETag %s, loaded %s): not loaded again",
                        obj.key,
                        obj.etag,
                        etag,
                        extra={"object_key": obj.key, "etag": obj.etag, "loaded_etag": etag},
                    )
        return new

    def _manifest_exists(self) -> bool:
        with self.conn.cursor() as cur:
            cur.execute("select to_regclass('raw.load_manifest') is not null")
            exists = cur.fetchone()[0]
        self.conn.rollback()
        return exists

    def _manifest_etags(self, prefix: str) -> dict[str, str]:
        like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self.conn.cursor() as cur:
            cur.execute(
                "select object_key, object_etag from raw.load_manifest where bucket = %s and object_key like %s",
                (self.source.bucket, like),
            )
            rows = dict(cur.fetchall())
        self.conn.rollback()
        return rows

    # --- loading
    def load_object(self, obj: ObjectInfo, summary: RunSummary) -> str:
        """Load one object in one transaction. Returns loaded / busy / already / changed / failed."""
        refused: dict[int, str] = {}
        careful = False
        while True:
            reader_box: list[ObjectReader] = []
            try:
                return self._copy_object(obj, summary, refused, reader_box, careful)
            except ObjectChanged as exc:
                self.conn.rollback()
                summary.etag_changes += 1
                log.warning("%s: not loaded", exc, extra={"object_key": obj.key})
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
                    return self._failed(obj, summary, exc, reader)
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
                self._rollback_quietly()
                return self._failed(obj, summary, exc, reader)
            except Exception as exc:
                self._rollback_quietly()
                return self._failed(obj, summary, exc, reader_box[0] if reader_box else None)

    def _failed(
        self, obj: ObjectInfo, summary: RunSummary, exc: Exception, reader: ObjectReader | None
    ) -> str:
        cause = reader.error if reader is not None and reader.error is not None else exc
        message = (
            f"{type(cause).__name__}: {str(cause).strip().splitlines()[0] if str(cause).strip() else ''}"
        )
        summary.failed_objects += 1
        summary.failures.append({"object_key": obj.key, "error": message})
        log.error(
            "Failed to load %s: %s (rolled back, will be retried by the next run)",
            obj.key,
            message,
            extra={"object_key": obj.key, "error": message},
        )
        return "failed"

    def _rollback_quietly(self) -> None:
        try:
            self.conn.rollback()
        except psycopg2.Error:
            pass

    def _copy_object(
        self, obj: ObjectInfo, summary: RunSummary, refused: dict[int, str], reader_box: list, careful: bool
    ) -> str:
        bucket = self.source.bucket
        with self.conn.cursor() as cur:
            cur.execute(
                "select pg_try_advisory_xact_lock(%s, hashtext(%s))", (LOCK_CLASS, f"{bucket}/{obj.key}")
            )
            if not cur.fetchone()[0]:
                self.conn.rollback()
                summary.busy_objects += 1
                log.info("Skipping %s: another run is loading it", obj.key, extra={"object_key": obj.key})
                return "busy"
            cur.execute(
                "select object_etag from raw.load_manifest where bucket = %s and object_key = %s",
                (bucket, obj.key),
            )
            row = cur.fetchone()
            if row is not None:
                self.conn.rollback()
                if row[0] != obj.etag:
                    summary.etag_changes += 1
                    log.warning(
                        "Object %s changed after it was loaded: not loaded again",
                        obj.key,
                        extra={"object_key": obj.key},
                    )
                    return "changed"
                return "already"
            body = self.source.open(obj)
            try:
                reader = ObjectReader(
                    body,
                    bucket=bucket,
                    key=obj.key,
                    etag=obj.etag,
                    load_id=summary.load_id,
                    skip_lines=refused,
                    careful=careful,
                    on_progress=self.progress.add_events,
                )
                reader_box.append(reader)
                prefetch = Prefetcher(reader)
                try:
                    cur.copy_expert(COPY_SQL, prefetch, size=CHUNK_BYTES)
                finally:
                    prefetch.close()
            finally:
                body.close()
            stats = reader.stats
            if stats.rejects:
                execute_values(
                    cur,
                    "insert into raw.rejected_lines (bucket, object_key, line_number, reason, line, load_id)"
                    " values %s",
                    [
                        (bucket, obj.key, r.line_number, r.reason, r.sample, summary.load_id)
                        for r in stats.rejects
                    ],
                )
            cur.execute(
                "insert into raw.load_manifest (bucket, object_key, object_etag, object_size, lines,"
                " events_loaded, lines_rejected, load_id, object_last_modified, format, compressed)"
                " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    bucket,
                    obj.key,
                    obj.etag,
                    obj.size,
                    stats.lines,
                    stats.events,
                    stats.rejected,
                    summary.load_id,
                    obj.last_modified,
                    stats.fmt,
                    stats.compressed,
                ),
            )
        self.conn.commit()
        summary.objects += 1
        summary.events += stats.events
        summary.lines += stats.lines
        summary.rejects += stats.rejected
        summary.bytes_read += stats.bytes_read
        log.info(
            "Loaded %s: %d events, %d rejected",
            obj.key,
            stats.events,
            stats.rejected,
            extra={"object_key": obj.key, "events": stats.events, "rejected": stats.rejected},
        )
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
        return "loaded"


# --- the run


_COUNTERS = (
    "objects",
    "events",
    "lines",
    "rejects",
    "etag_changes",
    "failed_objects",
    "busy_objects",
    "bytes_read",
)


def load_all(loader: Loader, pending: list[ObjectInfo], summary: RunSummary, workers: int) -> None:
    """Load the objects, ``workers`` at a time: each worker has its own connection and loads
    whole objects in their own transactions (PostgreSQL parses jsonb in one backend per COPY,
    so two COPYs use two cores). Exactly once still rests on the per-object lock + manifest."""
    workers = max(1, min(workers, len(pending)))
    if workers == 1:
        for obj in pending:
            loader.load_object(obj, summary)
            loader.progress.object_done()
        return
    todo: queue.Queue[ObjectInfo] = queue.Queue()
    for obj in pending:
        todo.put(obj)
    stop = threading.Event()
    parts = [RunSummary(load_id=summary.load_id, source=summary.source) for _ in range(workers)]

    def work(index: int) -> None:
        conn = loader.conn if index == 0 else connect()
        worker = Loader(loader.settings, loader.source, conn, loader.progress)
        try:
            while not stop.is_set():
                try:
                    obj = todo.get_nowait()
                except queue.Empty:
                    return
                worker.load_object(obj, parts[index])
                loader.progress.object_done()
        except BaseException:
            stop.set()
            raise
        finally:
            if index:
                conn.close()

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="loader-worker") as pool:
        futures = [pool.submit(work, i) for i in range(workers)]
    for part in parts:
        for name in _COUNTERS:
            setattr(summary, name, getattr(summary, name) + getattr(part, name))
        summary.failures.extend(part.failures)
    for future in futures:
        future.result()  # re-raises a worker's fatal error (e.g. the database went away)


def _start_run(conn, summary: RunSummary) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "update raw.load_runs set status = 'abandoned', finished_at = now(),"
            " error = coalesce(error, 'the loader process ended without finishing the run')"
            " where status = 'running'"
            " and (backend_pid is null or backend_pid not in (select pid from pg_stat_activity))"
        )
        cur.execute(
            "insert into raw.load_runs (load_id, started_at, status, source, backend_pid)"
            " values (%s, now(), 'running', %s, pg_backend_pid())",
            (summary.load_id, summary.source),
        )
    conn.commit()


def _finish_run(conn, summary: RunSummary) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "update raw.load_runs set finished_at = now(), objects = %s, events = %s, rejects = %s,"
            " etag_changes = %s, failed_objects = %s, status = %s, error = %s, dbt_status = %s,"
            " models_built = %s where load_id = %s",
            (
                summary.objects,
                summary.events,
                summary.rejects,
                summary.etag_changes,
                summary.failed_objects,
                summary.status,
                summary.error,
                summary.dbt_status,
                summary.models_built if summary.dbt_status else None,
                summary.load_id,
            ),
        )
    conn.commit()


def _last_dbt_failed(conn, load_id: str) -> bool:
    with conn.cursor() as cur:
        cur.execute(
            "select dbt_status from raw.load_runs where load_id <> %s and dbt_status is not null"
            " order by started_at desc limit 1",
            (load_id,),
        )
        row = cur.fetchone()
    conn.rollback()
    return row is not None and row[0] == "failed"


def run_load(
    settings: Settings,
    *,
    source: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    build: bool = True,
    dry_run: bool = False,
    lookback_hours: float | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    s3_client=None,
) -> RunSummary:
    """Load every new object in the window, then dbt build. Raises LoaderError if the run
    cannot happen at all (bad source, database unreachable); otherwise returns the summary."""
    started = time.monotonic()
    now = datetime.now(UTC)
    until = until or now
    since = since or (until - timedelta(hours=lookback_hours or settings.lookback_hours))
    if since > until:
        raise LoaderError(f"--since {since.isoformat()} is after --until {until.isoformat()}")
    spec = source or settings.default_source
    try:
        src = parse_source(
            spec, settings.raw_prefix, lambda: s3_client or make_s3_client(settings.s3_max_attempts)
        )
    except ValueError as exc:
        raise LoaderError(str(exc)) from exc
    summary = RunSummary(load_id=str(uuid.uuid4()), source=src.describe(), dry_run=dry_run)
    conn = connect()
    try:
        if not dry_run:
            schema.migrate(conn)
            _start_run(conn, summary)
        loader = Loader(settings, src, conn, progress)
        log.info(
            "Loader run %s: %s, window %s .. %s%s",
            summary.load_id,
            summary.source,
            since.isoformat(timespec="seconds"),
            until.isoformat(timespec="seconds"),
            " (dry run)" if dry_run else "",
            extra={"load_id": summary.load_id},
        )
        lost_db: Exception | None = None
        try:
            pending = loader.discover(since, until, summary)
            summary.pending_objects = len(pending)
            log.info("Found %d new objects to load", len(pending), extra={"objects": len(pending)})
            if dry_run:
                for obj in pending:
                    log.info("Would load %s (%d bytes)", obj.key, obj.size, extra={"object_key": obj.key})
                summary.status = "succeeded"
                return summary
            loader.progress.begin(len(pending))
            load_all(loader, pending, summary, workers or settings.workers)
            summary.status = "partial" if summary.failed_objects else "succeeded"
        except Exception as exc:
            summary.status = "failed"
            summary.error = f"{type(exc).__name__}: {str(exc).strip()}"
            log.error("Loader run failed: %s", summary.error, extra={"load_id": summary.load_id})
            if isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError):
                lost_db = exc
        finally:
            loader.progress.finish()
        log.info("Read %d files, parsed %d events.", summary.objects, summary.lines)
        log.info(
            "Inserted %d rows into raw.clickstream_events",
            summary.events,
            extra={"events": summary.events, "rejects": summary.rejects, "objects": summary.objects},
        )
        if lost_db is not None:
            raise LoaderError(
                f"lost the connection to PostgreSQL at {describe_target()}: {lost_db}"
            ) from lost_db
        if summary.failed_objects:
            summary.error = f"{summary.failed_objects} objects failed: " + "; ".join(
                f"{f['object_key']}: {f['error']}" for f in summary.failures[:5]
            )
        _finish_run(conn, summary)

        if build and summary.status != "failed":
            if summary.events > 0 or _last_dbt_failed(conn, summary.load_id):
                from loader.dbt_step import run_dbt_build

                outcome = run_dbt_build(
                    settings.dbt_project_dir, settings.dbt_profiles_dir, in_lambda=settings.in_lambda
                )
                summary.dbt_status = "success" if outcome.success else "failed"
                summary.models_built = outcome.models_built
                if not outcome.success:
                    summary.error = outcome.error
            else:
                summary.dbt_status = "skipped"
                log.info("Nothing new loaded: dbt build skipped")
            _finish_run(conn, summary)
        return summary
    finally:
        summary.seconds = round(time.monotonic() - started, 3)
        try:
            conn.close()
        except psycopg2.Error:
            pass
