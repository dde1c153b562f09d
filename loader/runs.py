"""Run bookkeeping in ``raw.load_runs``: one row per run, its counters kept exact as loads
commit, and the state of its dbt build, from which the next run decides whether the marts
must be built even when it loaded nothing new."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

from loader import schema
from loader.db import BUILD_CLASS, BUILD_KEY, FENCE_KEY

log = logging.getLogger("loader")


@dataclass
class RunSummary:
    """What one run did. ``result()`` is the one shape the CLI (``--json``) prints and the
    Lambda returns."""

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
    objects_left: int = 0
    bytes_read: int = 0
    dbt_status: str | None = None
    build_reason: str | None = None
    models_built: int = 0
    error: str | None = None
    dry_run: bool = False
    seconds: float = 0.0
    failures: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "succeeded" and self.dbt_status != "failed"

    @property
    def outcome(self) -> str:
        """succeeded / partial (objects failed) / failed (the load) / dbt_failed (the build)."""
        return "dbt_failed" if self.status != "failed" and self.dbt_status == "failed" else self.status

    def result(self) -> dict:
        out = asdict(self)
        out["load_status"] = self.status
        out["status"] = self.outcome
        out["failures"] = out["failures"][:20]
        return out

    @classmethod
    def could_not_start(cls, source: str, error: str) -> RunSummary:
        """A run that never got going (bad source, database unreachable)."""
        return cls(load_id="", source=source, status="failed", error=error)


def start_run(conn, summary: RunSummary) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "update raw.load_runs set status = 'abandoned', finished_at = now(),"
            " error = coalesce(error, 'the loader process ended without finishing the run')"
            " where status = 'running'"
            " and (backend_pid is null or backend_pid not in (select pid from pg_stat_activity))"
        )
        cur.execute(
            "select load_id, started_at from raw.load_runs where status = 'running' order by started_at"
        )
        others = cur.fetchall()
        cur.execute(
            "insert into raw.load_runs (load_id, started_at, status, source, backend_pid)"
            " values (%s, now(), 'running', %s, pg_backend_pid())",
            (summary.load_id, summary.source),
        )
    conn.commit()
    for other, started_at in others:
        # two loads at once split the objects (each object's lock): neither waits for the other
        log.info(
            "Run %s (started %s) is still loading: this run loads the objects it does not hold",
            other,
            started_at.isoformat(timespec="seconds"),
            extra={"load_id": summary.load_id, "other_load_id": str(other)},
        )


def record_loaded(cur, load_id: str, *, objects: int, events: int, rejects: int) -> None:
    """In a load's own transaction: the run's counters move with what commits, so even a run
    that is killed later says exactly what it loaded."""
    cur.execute(
        "update raw.load_runs set objects = objects + %s, events = events + %s, rejects = rejects + %s,"
        " last_loaded_at = clock_timestamp() where load_id = %s",
        (objects, events, rejects, load_id),
    )


def finish_run(conn, summary: RunSummary) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "update raw.load_runs set finished_at = now(), objects = %s, events = %s, rejects = %s,"
            " etag_changes = %s, failed_objects = %s, objects_left = %s, status = %s, error = %s,"
            " dbt_status = %s, models_built = %s where load_id = %s",
            (
                summary.objects,
                summary.events,
                summary.rejects,
                summary.etag_changes,
                summary.failed_objects,
                summary.objects_left,
                summary.status,
                summary.error,
                summary.dbt_status,
                summary.models_built if summary.dbt_status not in (None, "skipped") else None,
                summary.load_id,
            ),
        )
    conn.commit()


# --- the build


def acquire_build_lock(conn, wait_seconds: float) -> bool:
    """Take the build lock (a session lock: a killed run releases it), waiting up to
    ``wait_seconds`` for a build another run is doing."""
    deadline = time.monotonic() + max(0.0, wait_seconds)
    told = False
    while True:
        with conn.cursor() as cur:
            cur.execute("select pg_try_advisory_lock(%s, %s)", (BUILD_CLASS, BUILD_KEY))
            got = cur.fetchone()[0]
        conn.commit()
        if got:
            return True
        if time.monotonic() >= deadline:
            return False
        if not told:
            log.info("Another run is building the marts: waiting up to %.0fs for it", wait_seconds)
            told = True
        time.sleep(0.5)


def release_build_lock(conn) -> None:
    with conn.cursor() as cur:
        cur.execute("select pg_advisory_unlock(%s, %s)", (BUILD_CLASS, BUILD_KEY))
    conn.commit()


@contextmanager
def migrated_under_build_lock(conn, wait_seconds: float) -> Iterator[bool]:
    """What every command that works on the marts or on raw's history (check, trim, retention,
    forget, the erasure upkeep) does first: the migration when the schema is out of date
    (``schema.migrate``: nothing to lock when it is current), then the build lock, waited for up
    to ``wait_seconds``. Yields whether the lock is held (False: a build held it all along);
    released after the block. In this order: the migration waits for nothing while it holds a
    lock, and the build lock is only ever tried, never waited for inside PostgreSQL."""
    schema.migrate(conn)
    held = acquire_build_lock(conn, wait_seconds)
    try:
        yield held
    finally:
        if held:
            release_build_lock(conn)


def build_reason(conn, load_id: str) -> str | None:
    """Why the marts must be built now, or None when they already hold every load. Call it
    holding the build lock: a build still marked running then belongs to a run that died."""
    with conn.cursor() as cur:
        cur.execute(
            "update raw.load_runs set dbt_status = 'interrupted', dbt_finished_at = now()"
            " where dbt_status = 'running' and load_id <> %s returning load_id",
            (load_id,),
        )
        interrupted = [row[0] for row in cur.fetchall()]
        cur.execute(
            "select dbt_status from raw.load_runs where dbt_started_at is not null and load_id <> %s"
            " order by dbt_started_at desc limit 1",
            (load_id,),
        )
        last = cur.fetchone()
        cur.execute("select max(dbt_started_at) from raw.load_runs where dbt_status = 'success'")
        last_success = cur.fetchone()[0]
        newer = False
        if last_success is not None:
            # a load stamped before a build's start committed before it (the build fence)
            cur.execute(
                "select exists (select 1 from raw.load_manifest where loaded_at >= %s and events_loaded > 0)",
                (last_success,),
            )
            newer = cur.fetchone()[0]
    conn.commit()
    if interrupted:
        log.warning(
            "The build of run %s was interrupted (its process died): building again",
            ", ".join(str(i) for i in interrupted),
        )
    if last is not None and last[0] in ("failed", "interrupted"):
        return f"the last build {last[0]}"
    if last_success is None:
        return "the marts have not been built yet"
    if newer:
        return "events were loaded since the last build started"
    return None


def begin_build(conn, load_id: str) -> None:
    """Record ``dbt_status = 'running'`` and the build's start, stamped while no load
    transaction is open (the fence taken alone), so every load stamped earlier is committed."""
    with conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(%s, %s)", (BUILD_CLASS, FENCE_KEY))
        cur.execute(
            "update raw.load_runs set dbt_status = 'running', dbt_started_at = clock_timestamp(),"
            " dbt_finished_at = null where load_id = %s",
            (load_id,),
        )
    conn.commit()


def end_build(conn, summary: RunSummary) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "update raw.load_runs set dbt_status = %s, dbt_finished_at = now(), models_built = %s,"
            " error = coalesce(%s, error) where load_id = %s",
            (summary.dbt_status, summary.models_built, summary.error, summary.load_id),
        )
    conn.commit()
