"""One loader run: discover the new objects, copy them into raw.clickstream_events exactly once
(``loader.copying``), record the run (``loader.runs``), then ``dbt build`` whenever the marts
are behind the raw data: after new events, and after a build that failed or was killed.

A time budget (``Budget``) stops the run from taking new objects in time for the build: what
is left is logged and loaded by the next run."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg2

from loader import schema
from loader.copying import BatchLimits
from loader.credentials import describe_target
from loader.db import LoaderError, connect
from loader.discovery import discover, parse_moment
from loader.pipeline import load_all
from loader.progress import Progress
from loader.runs import (
    RunSummary,
    acquire_build_lock,
    begin_build,
    build_reason,
    end_build,
    finish_run,
    release_build_lock,
    start_run,
)
from loader.settings import Settings
from loader.sources import make_s3_client, parse_source

__all__ = ["Budget", "LoaderError", "Progress", "RunSummary", "connect", "parse_moment", "run_load"]

log = logging.getLogger("loader")

# The 15-minute cycle's build: models, and the data tests scoped to the rows written since the
# last good build (macro get_where_subquery, var test_scope); unit tests (logic, checked in CI)
# and the whole-history checks (tag full_scan) are left to the daily full check (loader.check).
CYCLE_BUILD_ARGS = (
    "--exclude",
    "tag:full_scan",
    "--exclude-resource-type",
    "unit_test",
    "--vars",
    '{"test_scope": "cycle"}',
)


@dataclass(frozen=True)
class Budget:
    """When the run stops taking new objects (``time.monotonic()`` seconds), or never."""

    load_until: float | None = None

    @classmethod
    def seconds(cls, seconds: float | None) -> Budget:
        """``--max-seconds``: load for at most this long, then build."""
        return cls(None if seconds is None else time.monotonic() + seconds)

    @classmethod
    def lambda_context(cls, context, build_margin_seconds: float) -> Budget:
        """In Lambda: stop when what is left of the invocation falls below the build's margin."""
        remaining = context.get_remaining_time_in_millis() / 1000.0
        return cls(time.monotonic() + remaining - build_margin_seconds)

    def expired(self) -> bool:
        return self.load_until is not None and time.monotonic() >= self.load_until


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
    budget: Budget | None = None,
) -> RunSummary:
    """Load every new object in the window, then dbt build. Raises LoaderError if the run
    cannot happen at all (bad source, database unreachable); otherwise returns the summary."""
    started = time.monotonic()
    budget = budget or Budget()
    progress = progress or Progress(False)
    now = datetime.now(UTC)
    until = until or now
    since = since or (until - timedelta(hours=lookback_hours or settings.lookback_hours))
    if since > until:
        raise LoaderError(f"--since {since.isoformat()} is after --until {until.isoformat()}")
    spec = source or settings.default_source
    pool_size = settings.fetch_concurrency + settings.workers + 2
    try:
        src = parse_source(
            spec,
            settings.raw_prefix,
            lambda: s3_client or make_s3_client(settings.s3_max_attempts, pool_size),
        )
    except ValueError as exc:
        raise LoaderError(str(exc)) from exc
    summary = RunSummary(load_id=str(uuid.uuid4()), source=src.describe(), dry_run=dry_run)
    conn = connect()
    try:
        if not dry_run:
            schema.migrate(conn)
            start_run(conn, summary)
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
            pending, summary.etag_changes = discover(src, conn, since, until)
            summary.pending_objects = len(pending)
            log.info("Found %d new objects to load", len(pending), extra={"objects": len(pending)})
            if dry_run:
                for obj in pending:
                    log.info("Would load %s (%d bytes)", obj.key, obj.size, extra={"object_key": obj.key})
                summary.status = "succeeded"
                return summary
            progress.begin(len(pending))
            summary.objects_left = load_all(
                src,
                conn,
                pending,
                summary,
                workers=workers or settings.workers,
                limits=BatchLimits(settings.batch_objects, settings.batch_bytes, settings.fetch_concurrency),
                progress=progress,
                should_stop=budget.expired,
            )
            if summary.objects_left:
                log.warning(
                    "Stopping early: %d objects left for the next run",
                    summary.objects_left,
                    extra={"objects_left": summary.objects_left},
                )
            summary.status = "partial" if summary.failed_objects else "succeeded"
        except Exception as exc:
            summary.status = "failed"
            summary.error = f"{type(exc).__name__}: {str(exc).strip()}"
            log.error("Loader run failed: %s", summary.error, extra={"load_id": summary.load_id})
            if isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError):
                lost_db = exc
        finally:
            progress.finish()
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
        finish_run(conn, summary)
        if build and summary.status != "failed":
            _build(conn, settings, summary)
        return summary
    finally:
        summary.seconds = round(time.monotonic() - started, 3)
        try:
            conn.close()
        except psycopg2.Error:
            pass


def _build(conn, settings: Settings, summary: RunSummary) -> None:
    """``dbt build`` when the marts are behind; one build at a time across runs."""
    if not acquire_build_lock(conn, settings.build_wait_seconds):
        summary.dbt_status = "skipped"
        log.warning(
            "Another run is still building the marts: dbt build skipped; the next run builds what this one loaded"
        )
        finish_run(conn, summary)
        return
    try:
        summary.build_reason = build_reason(conn, summary.load_id)
        if summary.build_reason is None:
            summary.dbt_status = "skipped"
            if summary.events:
                log.info(
                    "The marts already hold this run's events (another run built them): dbt build skipped"
                )
            else:
                log.info("Nothing new loaded: dbt build skipped")
            finish_run(conn, summary)
            return
        log.info("Building the marts: %s", summary.build_reason)
        begin_build(conn, summary.load_id)
        from loader.dbt_step import run_dbt_build

        outcome = run_dbt_build(
            settings.dbt_project_dir,
            settings.dbt_profiles_dir,
            in_lambda=settings.in_lambda,
            extra_args=CYCLE_BUILD_ARGS,
        )
        summary.dbt_status = "success" if outcome.success else "failed"
        summary.models_built = outcome.models_built
        if not outcome.success:
            summary.error = outcome.error
        end_build(conn, summary)
    finally:
        release_build_lock(conn)
