"""Retention (``RETENTION_MONTHS=N``; ``python -m loader retention``; in AWS the daily full
check runs it): event-level data older than N whole months leaves the warehouse, whole months at
a time. The month boundary: the first of the month N months before today (UTC); everything of an
earlier month goes, so at least N months are always kept.

- ``raw.clickstream_events`` (partitioned by month of ``loaded_at``) and ``analytics.fact_events``
  (by month of ``event_date``) drop their old month partitions: no row is deleted one by one and
  no VACUUM follows. Rows of a table from before partitioning sit in its default partition and
  are deleted instead; a plain ``fact_events`` (published from Spark) deletes its old rows.
- ``raw.rejected_lines`` deletes the rejects of those months (``rejected_at``).
- ``raw.trimmed_loads`` / ``raw.trimmed_objects`` forget trimmed loads of those months: they are
  past retention, so there is nothing left to restore.
- The daily aggregates and session marts keep their figures: the dashboards still show the
  months whose events are gone. A full refresh rebuilds from what raw keeps, so it loses them.

Each table's drop is its own transaction, under the build lock (no build reads a partition while
it goes), and is a row of ``raw.retention_drops``; run twice, the second run finds nothing."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

from loader.db import BUILD_CLASS, FENCE_KEY, connect
from loader.runs import migrated_under_build_lock
from loader.settings import Settings

log = logging.getLogger("loader.retention")

# (table, month column): the partitioned event-grain tables drop partitions, the rejects (a plain
# table) delete rows
TABLES = (
    ("raw.clickstream_events", "loaded_at"),
    ("analytics.fact_events", "event_date"),
    ("raw.rejected_lines", "rejected_at"),
)


@dataclass
class RetentionSummary:
    status: str = "dropped"  # dropped / nothing / dry run / skipped / off
    months: int | None = None
    kept_since: str | None = None  # the first day kept (the cutoff)
    rows: int = 0
    dropped: list[dict] = field(default_factory=list)  # {"relation", "rows"} per partition or table
    reason: str | None = None
    seconds: float = 0.0

    def result(self) -> dict:
        return asdict(self)


def apply_retention(
    settings: Settings, *, months: int | None = None, dry_run: bool = False, conn=None
) -> RetentionSummary:
    """Drop what is older than ``months`` (default RETENTION_MONTHS); the summary."""
    started = time.monotonic()
    months = settings.retention_months if months is None else months
    summary = RetentionSummary(months=months)
    if months is None:
        summary.status = "off"
        summary.reason = "RETENTION_MONTHS is not set: everything is kept"
        return summary
    own = conn is None
    conn = conn or connect()
    try:
        with migrated_under_build_lock(conn, settings.build_wait_seconds) as held:
            if not held:
                summary.status = "skipped"
                summary.reason = "a build held the lock for too long; the next full check applies retention"
                log.warning("Retention skipped: %s", summary.reason)
                return summary
            with conn.cursor() as cur:
                cur.execute(
                    "select date_trunc('month', (now() at time zone 'UTC') - make_interval(months => %s))::date",
                    (months,),
                )
                cutoff = cur.fetchone()[0]
            conn.commit()
            summary.kept_since = cutoff.isoformat()
            for table, column in TABLES:
                with conn.cursor() as cur:
                    if not dry_run:
                        # the fence alone first, as every transaction that takes a strong lock on
                        # raw does (a partition dropped takes its table alone): no load transaction
                        # is open meanwhile, and those that start wait for it holding nothing
                        cur.execute("select pg_advisory_xact_lock(%s, %s)", (BUILD_CLASS, FENCE_KEY))
                    cur.execute("select to_regclass(%s) is not null", (table,))
                    if not cur.fetchone()[0]:
                        conn.commit()
                        continue
                    cur.execute(
                        "select relation_name, removed from raw.drop_months_before(%s, %s, %s, %s)",
                        (table, column, cutoff, dry_run),
                    )
                    for relation, removed in cur.fetchall():
                        _note(summary, cur, relation, cutoff, int(removed or 0), dry_run)
                conn.commit()
            with conn.cursor() as cur:
                if not dry_run:
                    # trimmed loads past retention: nothing of them is left to restore
                    cur.execute("delete from raw.trimmed_objects where trimmed_loaded_at < %s", (cutoff,))
                    cur.execute("delete from raw.trimmed_loads where loaded_at < %s", (cutoff,))
            conn.commit()
        if not summary.dropped:
            summary.status = "nothing"
        elif dry_run:
            summary.status = "dry run"
        log.info(
            "Retention %s: %d rows in %d partitions or tables older than %s (RETENTION_MONTHS=%d)",
            summary.status,
            summary.rows,
            len(summary.dropped),
            summary.kept_since,
            months,
        )
        return summary
    finally:
        summary.seconds = round(time.monotonic() - started, 3)
        if own:
            conn.close()


def _note(summary: RetentionSummary, cur, relation: str, cutoff, removed: int, dry_run: bool) -> None:
    if not removed:
        return
    summary.dropped.append({"relation": relation, "rows": removed})
    summary.rows += removed
    if not dry_run:
        cur.execute(
            "insert into raw.retention_drops (relation_name, months_before, rows_removed) values (%s, %s, %s)",
            (relation, cutoff, removed),
        )
