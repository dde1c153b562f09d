"""Creates and migrates the loader's tables in schema raw: ``migrate(conn)``, first thing on a
connection, in every command.

Most runs find the schema current: the version recorded in ``raw.schema_version`` (this
file's schema.sql and the UTC month, whose partitions it makes) is the one they would apply,
and they take no lock at all. Only a new schema.sql or a new month applies it, in one
transaction whose locks come in the order every run takes them (docs/loader.md, "Two runs at
once"):

1. the migration lock (advisory): one migration at a time; the next finds the version current;
2. the build fence alone (advisory, as a build's start takes it): every load transaction holds
   it shared from its first statement, so this waits for the open ones to commit, and the loads
   that follow wait (holding nothing) until the migration commits;
3. every table of schema raw at once, ``NOWAIT``: a session still holding one (a build reading
   raw) makes the migration let everything go, wait a moment and try again, never wait holding
   a lock, so no run ever waits for the migration while the migration waits for it.

A migration that does not get its locks within ``wait_seconds`` raises ``SchemaBusy`` and
writes nothing: the run did not start, and the next one migrates."""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
from psycopg2 import errors, sql

from loader.db import BUILD_CLASS, FENCE_KEY, LoaderError

SCHEMA_SQL = Path(__file__).with_name("schema.sql")
MIGRATE_KEY = 3  # (BUILD_CLASS, MIGRATE_KEY): one migration at a time
WAIT_SECONDS = 120.0
RETRY_SECONDS = 0.5
# a safety net inside the migration: every table of raw is locked beforehand
STATEMENT_LOCK_TIMEOUT = "5s"

log = logging.getLogger("loader")


class SchemaBusy(LoaderError):
    """The schema needs migrating and other sessions held its tables for too long."""


def schema_version(now: datetime | None = None) -> str:
    """What ``migrate`` records: schema.sql's digest and the UTC month (ensure_month_partitions
    makes this month's and next month's partitions, so a new month migrates once)."""
    digest = hashlib.sha256(SCHEMA_SQL.read_bytes()).hexdigest()[:16]
    return f"{digest} {(now or datetime.now(UTC)).astimezone(UTC):%Y-%m}"


def applied_version(conn) -> str | None:
    """The version the database holds (None before the first migration): an AccessShareLock on
    raw.schema_version for an instant, released before it returns."""
    try:
        with conn.cursor() as cur:
            return _recorded(cur)
    finally:
        conn.rollback()


def migrate(conn, wait_seconds: float = WAIT_SECONDS) -> bool:
    """Apply loader/schema.sql when the database's version is not this one (see the module doc);
    True when it did. Call it holding no transaction. SchemaBusy after ``wait_seconds``."""
    version = schema_version()
    if applied_version(conn) == version:
        return False
    autocommit = conn.autocommit
    conn.autocommit = False  # the migration's locks are its transaction's
    try:
        return _migrate(conn, version, wait_seconds)
    finally:
        conn.autocommit = autocommit


def _migrate(conn, version: str, wait_seconds: float) -> bool:
    deadline = time.monotonic() + max(0.0, wait_seconds)
    told = False
    while True:
        try:
            if _apply(conn, version, max(0.001, deadline - time.monotonic())):
                log.info("Schema raw migrated to version %s", version, extra={"schema_version": version})
                return True
            return False  # another run migrated it meanwhile
        except (errors.LockNotAvailable, errors.DeadlockDetected) as exc:
            conn.rollback()
            if time.monotonic() >= deadline:
                raise SchemaBusy(
                    f"schema raw needs migrating (to {version}) and other sessions held its tables for"
                    f" {wait_seconds:.0f}s ({str(exc).strip().splitlines()[0]}): nothing done; the next run"
                    " migrates it"
                ) from exc
            if not told:
                log.info(
                    "Schema raw needs migrating and another session holds its tables: waiting up to %.0fs",
                    wait_seconds,
                )
                told = True
            time.sleep(RETRY_SECONDS)
        except psycopg2.Error:
            conn.rollback()
            raise


def _apply(conn, version: str, wait_seconds: float) -> bool:
    """One attempt, one transaction; False when the version was current once the lock was held."""
    with conn.cursor() as cur:
        # the advisory locks wait (for another migration, for the open load transactions) at
        # most until the deadline; lock_timeout covers advisory locks too
        cur.execute("select set_config('lock_timeout', %s, true)", (f"{int(wait_seconds * 1000)}ms",))
        cur.execute("select pg_advisory_xact_lock(%s, %s)", (BUILD_CLASS, MIGRATE_KEY))
        # read under the migration lock (only a migration writes it): a run that waited for
        # another's migration finds it done
        if _recorded(cur) == version:
            conn.rollback()
            return False
        cur.execute("select pg_try_advisory_xact_lock(%s, %s)", (BUILD_CLASS, FENCE_KEY))
        if not cur.fetchone()[0]:
            log.info("Schema raw needs migrating: waiting for the load transactions in progress to commit")
            cur.execute("select pg_advisory_xact_lock(%s, %s)", (BUILD_CLASS, FENCE_KEY))
        cur.execute("select set_config('lock_timeout', %s, true)", (STATEMENT_LOCK_TIMEOUT,))
        cur.execute(
            "select namespace.nspname, class.relname from pg_class as class"
            " inner join pg_namespace as namespace on class.relnamespace = namespace.oid"
            " where namespace.nspname = 'raw' and class.relkind in ('r', 'p') and not class.relispartition"
            " order by class.oid"
        )
        tables = [sql.Identifier(*row) for row in cur.fetchall()]
        if tables:
            # all of them or none (a partitioned table's partitions with it)
            cur.execute(
                sql.SQL("lock table {} in access exclusive mode nowait").format(sql.SQL(", ").join(tables))
            )
        cur.execute(SCHEMA_SQL.read_text())
        cur.execute("delete from raw.schema_version")
        cur.execute("insert into raw.schema_version (version) values (%s)", (version,))
    conn.commit()
    return True


def _recorded(cur) -> str | None:
    cur.execute("select to_regclass('raw.schema_version') is not null")
    if not cur.fetchone()[0]:
        return None
    cur.execute("select version from raw.schema_version order by applied_at desc limit 1")
    row = cur.fetchone()
    return row[0] if row else None
