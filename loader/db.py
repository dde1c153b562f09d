"""The loader's database side: the connection (libpq's PG* variables) and the advisory locks
that keep concurrent runs apart.

- Per object: a transaction-scoped lock on ``(LOCK_CLASS, hashtext(bucket/key))``, taken with
  ``pg_try_advisory_xact_lock`` before the manifest is re-checked; the manifest's primary key
  backs it up. Two runs split the objects instead of loading them twice.
- The build fence ``(BUILD_CLASS, FENCE_KEY)``: every load transaction holds it shared; a build
  takes it alone for an instant to stamp its start. A load committed before that stamp is in
  the build; one stamped after it is not (see ``runs.build_reason``).
- The build lock ``(BUILD_CLASS, BUILD_KEY)``: held by the run that is building (a session
  lock, so a killed run releases it): two builds never run at once."""

from __future__ import annotations

import os

import psycopg2

from loader.credentials import describe_target, ensure_pg_env

LOCK_CLASS = 0x6C6F6164  # "load": first key of the per-object advisory locks
BUILD_CLASS = 0x6275696C  # "buil": first key of the build fence and the build lock
FENCE_KEY = 1
BUILD_KEY = 2
APPLICATION_NAME = "clickstream-loader"


class LoaderError(Exception):
    """A fatal problem for the whole run (e.g. the database is unreachable)."""


def connect():
    """A connection from libpq's PG* variables; LoaderError with a clear message if unreachable."""
    ensure_pg_env()
    try:
        conn = psycopg2.connect(
            "",
            connect_timeout=int(os.environ.get("PGCONNECT_TIMEOUT", "10")),
            application_name=APPLICATION_NAME,
        )
    except psycopg2.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LoaderError(f"cannot connect to PostgreSQL at {describe_target()}: {first}") from exc
    return conn


def rollback_quietly(conn) -> None:
    try:
        conn.rollback()
    except psycopg2.Error:
        pass


def begin_load_transaction(cur):
    """First statement of every load transaction: hold the build fence (shared) and return the
    moment the transaction's loads are stamped with (after the fence: see the module doc)."""
    cur.execute("select pg_advisory_xact_lock_shared(%s, %s), clock_timestamp()", (BUILD_CLASS, FENCE_KEY))
    return cur.fetchone()[1]
