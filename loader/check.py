"""The daily full check (``python -m loader check``; in AWS the schedule
``clickstream-etl-full-check``): every data test over whole tables, the whole-history ones
(tag ``full_scan``: raw reconciled with fact_events, product totals) among them. The 15-minute
cycles test only the rows they wrote, so this is where an old row gone wrong shows. Its result
is a row of ``raw.full_checks``, shown on the dashboards' data-health bar; a failing check never
stops the cycles. It holds the build lock while it runs, so it never reads marts half-built.
A passed check then trims raw when RAW_TABLE_RETENTION_DAYS is set (``loader.trim``); every
check, passed or not, then applies RETENTION_MONTHS when set (``loader.retention``), and finishes
what came since each erasure (``loader.forget.finish_erasures``)."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict, dataclass, field

from loader.db import connect
from loader.runs import migrated_under_build_lock
from loader.settings import Settings

log = logging.getLogger("loader.check")

# every data test, unscoped; unit tests check the models' logic (CI), not the data. --quiet: dbt
# writes no progress to stdout (``check --json`` prints its summary there, alone); each test is
# still logged by loader.dbt_step
CHECK_ARGS = ("--quiet", "--exclude-resource-type", "unit_test")


@dataclass
class CheckSummary:
    check_id: str
    status: str = "running"  # passed / failed / skipped (the build lock stayed taken)
    tests: int = 0
    failures: int = 0
    warnings: int = 0
    failed_tests: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    trim: dict | None = None  # what the trim after a passed check removed (RAW_TABLE_RETENTION_DAYS)
    retention: dict | None = None  # what retention dropped after the check (RETENTION_MONTHS)
    erasures: dict | None = None  # the erasure upkeep after the check (loader.forget.finish_erasures)

    @property
    def ok(self) -> bool:
        return self.status == "passed"

    def result(self) -> dict:
        return asdict(self)


def run_full_check(settings: Settings, *, wait_seconds: float | None = None) -> CheckSummary:
    """Run the full check once and record it. Waits for a build in progress (up to
    ``wait_seconds``, default the build's wait times five) rather than test marts mid-build."""
    started = time.monotonic()
    summary = CheckSummary(check_id=str(uuid.uuid4()))
    conn = connect()
    try:
        wait = settings.build_wait_seconds * 5 if wait_seconds is None else wait_seconds
        with migrated_under_build_lock(conn, wait) as held:
            if not held:
                summary.status = "skipped"
                summary.error = "a build held the lock for too long; the next scheduled check runs it"
                log.warning("Full check skipped: %s", summary.error)
                return summary
            with conn.cursor() as cur:
                cur.execute(
                    "insert into raw.full_checks (check_id, started_at, status) values (%s, now(), 'running')",
                    (summary.check_id,),
                )
            conn.commit()
            log.info("Full check: every data test over whole tables")
            from loader.dbt_step import run_dbt_build

            outcome = run_dbt_build(
                settings.dbt_project_dir,
                settings.dbt_profiles_dir,
                in_lambda=settings.in_lambda,
                extra_args=CHECK_ARGS,
                command="test",
            )
            tests = [e for e in outcome.results if e["resource_type"] == "test"]
            summary.tests = len(tests)
            summary.failed_tests = [e["node"] for e in tests if e["status"] in ("fail", "error")]
            summary.failures = len(summary.failed_tests)
            summary.warnings = sum(1 for e in tests if e["status"] == "warn")
            summary.status = "passed" if outcome.success and not summary.failures else "failed"
            if summary.status == "failed":
                summary.error = outcome.error or f"{summary.failures} tests failed"
            with conn.cursor() as cur:
                cur.execute(
                    "update raw.full_checks set finished_at = now(), status = %s, tests = %s, failures = %s,"
                    " warnings = %s, failed_tests = %s, error = %s where check_id = %s",
                    (
                        summary.status,
                        summary.tests,
                        summary.failures,
                        summary.warnings,
                        summary.failed_tests[:50],
                        summary.error,
                        summary.check_id,
                    ),
                )
            conn.commit()
        level = logging.INFO if summary.ok else logging.ERROR
        log.log(
            level,
            "Full check %s: %d tests, %d failed, %d warnings",
            summary.status,
            summary.tests,
            summary.failures,
            summary.warnings,
            extra={"failed_tests": summary.failed_tests[:20]},
        )
        if summary.ok and settings.raw_table_retention_days is not None:
            # only after a passed check: it has just shown that the marts hold these lines
            from loader.trim import trim_raw

            try:
                summary.trim = trim_raw(settings, conn=conn).result()
            except Exception as exc:  # a failed trim leaves raw as it was; the check stands
                log.exception("Trim after the full check failed: %s", exc)
                summary.trim = {"status": "failed", "reason": str(exc)}
        if settings.retention_months is not None:
            # a policy, not a repair: applied whatever the check found
            from loader.retention import apply_retention

            try:
                summary.retention = apply_retention(settings, conn=conn).result()
            except Exception as exc:  # each table's drop is one transaction: none is half-done
                log.exception("Retention after the full check failed: %s", exc)
                summary.retention = {"status": "failed", "reason": str(exc)}
        # what came since each erasure (a re-sent event's object, a refusal under rejected/) goes
        # from the bucket without anyone running forget again
        from loader.forget import finish_erasures

        try:
            summary.erasures = finish_erasures(settings)
        except Exception as exc:  # each object is rewritten on its own: the next check goes on
            log.exception("Erasure upkeep after the full check failed: %s", exc)
            summary.erasures = {"status": "failed", "reason": str(exc)}
        return summary
    finally:
        summary.seconds = round(time.monotonic() - started, 3)
        conn.close()


def last_check_age_hours(conn) -> float | None:
    """Hours since the newest full check started, or None when none has run."""
    with conn.cursor() as cur:
        cur.execute(
            "select extract(epoch from now() - max(started_at)) / 3600 from raw.full_checks"
            " where status <> 'running'"
        )
        age = cur.fetchone()[0]
    conn.commit()
    return None if age is None else float(age)


def marts_built(conn) -> bool:
    """A build has succeeded (raw.load_runs): before that there is nothing to check."""
    with conn.cursor() as cur:
        cur.execute("select to_regclass('raw.load_runs') is not null")
        built = cur.fetchone()[0]
        if built:
            cur.execute("select exists (select 1 from raw.load_runs where dbt_status = 'success')")
            built = cur.fetchone()[0]
    conn.commit()
    return bool(built)
