"""Raw lines out of PostgreSQL once the warehouse holds them, and back in when a rebuild needs
them (``python -m loader trim`` / ``python -m loader restore``).

The bucket is the record of every event (its lifecycle keeps the objects RawRetentionDays);
``raw.clickstream_events`` is the landing table the builds read. With
``RAW_TABLE_RETENTION_DAYS=N`` the daily full check, once it has passed, removes the lines of
every load older than N days, one load (one ``loaded_at``) per transaction:

- only loads that a build has processed (``intermediate.int_raw_loads``) and that the passed
  full check saw: its reconciliation of raw with ``fact_events`` ran after them;
- each removed load is a row of ``raw.trimmed_loads`` in the same transaction, so a run killed
  midway leaves every load either whole or recorded, and the next run goes on from there;
- the manifest rows stay: an object re-sent later is still known and never loaded twice.

A full refresh of a model that reads raw's history refuses to run while ``raw.trimmed_loads``
has rows (it would drop that history); ``restore`` first copies those loads' objects from the
bucket again, as new loads, and clears their rows when they are back."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from loader import schema
from loader.db import LoaderError, connect
from loader.runs import migrated_under_build_lock
from loader.settings import Settings

log = logging.getLogger("loader.trim")

_KEY_HOUR = re.compile(r"(\d{4})/(\d{2})/(\d{2})/(\d{2})/")


@dataclass
class TrimSummary:
    status: str = "trimmed"  # trimmed / nothing / skipped / off
    loads: int = 0
    lines: int = 0
    objects: int = 0
    kept_since: str | None = None
    reason: str | None = None
    seconds: float = 0.0

    def result(self) -> dict:
        return asdict(self)


def trim_cutoff(conn, days: float) -> tuple[datetime | None, str | None]:
    """The moment before which a load may be removed: ``days`` ago, and no later than the start
    of the newest passed full check. None (and why) when nothing may go."""
    with conn.cursor() as cur:
        cur.execute("select to_regclass('intermediate.int_raw_loads') is not null")
        if not cur.fetchone()[0]:
            conn.commit()
            return None, "the marts have not been built yet"
        cur.execute("select max(started_at) from raw.full_checks where status = 'passed'")
        checked = cur.fetchone()[0]
        cur.execute("select now()")
        now = cur.fetchone()[0]
    conn.commit()
    if checked is None:
        return None, "no full check has passed yet (python -m loader check)"
    return min(now - timedelta(days=days), checked), None


def trim_raw(
    settings: Settings, *, days: float | None = None, dry_run: bool = False, conn=None
) -> TrimSummary:
    """Remove the raw lines of the loads that may go (see the module doc); the summary."""
    started = time.monotonic()
    summary = TrimSummary()
    days = settings.raw_table_retention_days if days is None else days
    if days is None:
        summary.status = "off"
        summary.reason = "RAW_TABLE_RETENTION_DAYS is not set: raw keeps every line"
        return summary
    own = conn is None
    conn = conn or connect()
    try:
        with migrated_under_build_lock(conn, settings.build_wait_seconds) as held:
            if not held:
                summary.status = "skipped"
                summary.reason = "a build held the lock for too long; the next run trims"
                log.warning("Trim skipped: %s", summary.reason)
                return summary
            cutoff, why = trim_cutoff(conn, days)
            if cutoff is None:
                summary.status = "skipped"
                summary.reason = why
                log.info("Trim skipped: %s", why)
                return summary
            with conn.cursor() as cur:
                cur.execute(
                    "select loads.loaded_at from intermediate.int_raw_loads as loads"
                    " where loads.loaded_at < %s and not exists"
                    " (select 1 from raw.trimmed_loads as t where t.loaded_at = loads.loaded_at)"
                    " order by loads.loaded_at",
                    (cutoff,),
                )
                loads = [row[0] for row in cur.fetchall()]
            conn.commit()
            for loaded_at in loads:
                if dry_run:
                    summary.loads += 1
                    continue
                with conn.cursor() as cur:
                    cur.execute(
                        "with gone as (delete from raw.clickstream_events where loaded_at = %(at)s"
                        " returning bucket, object_key, load_id)"
                        " insert into raw.trimmed_objects (bucket, object_key, load_id, trimmed_loaded_at, lines)"
                        " select bucket, object_key, load_id, %(at)s, count(*) from gone group by 1, 2, 3",
                        {"at": loaded_at},
                    )
                    cur.execute(
                        "select coalesce(sum(t.lines), 0), count(m.object_key) from raw.trimmed_objects as t"
                        " left join raw.load_manifest as m on m.bucket = t.bucket and m.object_key = t.object_key"
                        " and m.load_id = t.load_id where t.trimmed_loaded_at = %s",
                        (loaded_at,),
                    )
                    lines, objects = (int(value) for value in cur.fetchone())
                    if not lines:  # its lines are gone already (restored as newer loads): nothing to record
                        conn.rollback()
                        continue
                    cur.execute(
                        "insert into raw.trimmed_loads (loaded_at, lines, objects) values (%s, %s, %s)",
                        (loaded_at, lines, objects),
                    )
                conn.commit()
                summary.loads += 1
                summary.lines += lines
                summary.objects += objects
            with conn.cursor() as cur:
                cur.execute("select min(loaded_at) from raw.clickstream_events")
                oldest = cur.fetchone()[0]
            conn.commit()
            summary.kept_since = oldest.isoformat() if oldest else None
            if not summary.loads:
                summary.status = "nothing"
            elif dry_run:
                summary.status = "dry run"
            if not dry_run and summary.lines:
                # the removed rows' space goes back to the table for the next loads
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute("vacuum raw.clickstream_events")
                conn.autocommit = False
        log.info(
            "Trim %s: %d loads, %d lines, %d objects removed from raw.clickstream_events"
            " (loaded before %s); raw keeps lines since %s",
            summary.status,
            summary.loads,
            summary.lines,
            summary.objects,
            cutoff.isoformat(),
            summary.kept_since,
        )
        return summary
    finally:
        summary.seconds = round(time.monotonic() - started, 3)
        if own:
            conn.close()


@dataclass
class RestoreSummary:
    status: str = "restored"  # restored / nothing / incomplete
    loads: int = 0
    objects: int = 0
    events: int = 0
    loads_left: int = 0
    unrestorable_loads: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in ("restored", "nothing")

    def result(self) -> dict:
        return asdict(self)


def _key_hour(key: str) -> datetime | None:
    match = _KEY_HOUR.search(key)
    if not match:
        return None
    try:
        return datetime(*(int(part) for part in match.groups()), tzinfo=UTC)
    except ValueError:
        return None


def restore_raw(
    settings: Settings, *, source: str | None = None, since: datetime | None = None, budget=None
) -> RestoreSummary:
    """Copy the objects of every trimmed load from the bucket into raw again (as new loads, no
    build) and clear the loads that are whole again. Resumable: killed midway, run it again."""
    from loader.load import Progress, run_load

    started = time.monotonic()
    summary = RestoreSummary()
    conn = connect()
    try:
        schema.migrate(conn)
        with conn.cursor() as cur:
            # step 1, one transaction: the trimmed loads' objects leave the manifest (so the
            # load below takes them as new) and are remembered in raw.restoring_objects
            cur.execute(
                "with moved as (delete from raw.load_manifest as m using raw.trimmed_objects as t"
                " where m.bucket = t.bucket and m.object_key = t.object_key and m.load_id = t.load_id"
                " returning m.bucket, m.object_key, t.trimmed_loaded_at)"
                " insert into raw.restoring_objects select bucket, object_key, trimmed_loaded_at from moved"
                " on conflict do nothing"
            )
            cur.execute("select count(*) from raw.trimmed_loads")
            trimmed = cur.fetchone()[0]
            cur.execute("select object_key from raw.restoring_objects")
            keys = [row[0] for row in cur.fetchall()]
        conn.commit()
        if not trimmed:
            summary.status = "nothing"
            log.info("Restore: raw holds every load (raw.trimmed_loads is empty)")
            return summary
        if keys:
            hours = [h for h in (_key_hour(k) for k in keys) if h is not None]
            if since is None:
                if len(hours) < len(keys):
                    raise LoaderError(
                        "some trimmed objects have no YYYY/MM/DD/HH/ in their key: give --since"
                    )
                since = min(hours)
            log.info(
                "Restore: copying %d objects of %d trimmed loads from the bucket again", len(keys), trimmed
            )
            loaded = run_load(
                settings,
                source=source,
                since=since,
                until=datetime.now(UTC),
                build=False,
                progress=Progress(False),
                budget=budget,
            )
            summary.objects = loaded.objects
            summary.events = loaded.events
        with conn.cursor() as cur:
            # step 2: an object is back when the manifest has it again; a load is whole when all
            # of its objects are back (a load without manifest rows was not the loader's: it stays)
            cur.execute(
                "delete from raw.restoring_objects as r using raw.load_manifest as m"
                " where m.bucket = r.bucket and m.object_key = r.object_key"
            )
            cur.execute(
                "with back as (delete from raw.trimmed_loads as t where t.objects > 0 and not exists"
                " (select 1 from raw.restoring_objects as r where r.trimmed_loaded_at = t.loaded_at)"
                " returning t.loaded_at)"
                " delete from raw.trimmed_objects as o using back where o.trimmed_loaded_at = back.loaded_at"
                " returning back.loaded_at"
            )
            summary.loads = len({row[0] for row in cur.fetchall()})
            cur.execute("select loaded_at, objects from raw.trimmed_loads order by 1")
            left = cur.fetchall()
        conn.commit()
        summary.loads_left = len(left)
        summary.unrestorable_loads = [ts.isoformat() for ts, objects in left if objects == 0][:20]
        if left:
            summary.status = "incomplete"
            log.error(
                "Restore incomplete: %d trimmed loads are not back (%d without manifest rows, not the"
                " loader's; the others' objects could not be copied: see the load's failed objects)",
                len(left),
                sum(1 for _, objects in left if objects == 0),
            )
        else:
            log.info("Restore: every trimmed load is back in raw.clickstream_events")
        return summary
    finally:
        summary.seconds = round(time.monotonic() - started, 3)
        conn.close()
