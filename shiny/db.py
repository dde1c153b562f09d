"""The connection pool of the dashboards: one per process, created at import, as the read-only
role (`DASHBOARD_PGUSER`, default `clickstream_reader`) with a statement timeout.

It opens connections lazily, so the app starts while the database is down, and drops a broken
connection instead of handing it out again, so it recovers by itself.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager

import psycopg2
import psycopg2.pool


class DatabaseUnavailable(RuntimeError):
    """The warehouse could not be reached (or the connection broke)."""


def connection_params() -> dict[str, str]:
    """libpq settings of the read-only dashboard role, from the environment."""
    return {
        "host": os.environ.get("PGHOST", "127.0.0.1"),
        "port": os.environ.get("PGPORT", "5432"),
        "dbname": os.environ.get("PGDATABASE", "clickstream"),
        "user": os.environ.get("DASHBOARD_PGUSER", "clickstream_reader"),
        "password": os.environ.get("DASHBOARD_PGPASSWORD", "clickstream_reader"),
        "connect_timeout": os.environ.get("DASHBOARD_CONNECT_TIMEOUT", "3"),
        "application_name": "clickstream-dashboards",
        "options": "-c statement_timeout={}".format(
            os.environ.get("DASHBOARD_STATEMENT_TIMEOUT_MS", "30000")
        ),
    }


class Pool:
    """A small thread-safe psycopg2 pool that opens connections lazily (so the app starts
    while the database is down) and drops broken connections (so it recovers by itself)."""

    def __init__(self, maxconn: int = 4, wait_seconds: float = 30.0):
        self._maxconn = maxconn
        self._pool: psycopg2.pool.ThreadedConnectionPool | None = None
        self._lock = threading.Lock()
        # psycopg2's pool raises when every connection is taken; callers wait for one instead
        self._slots = threading.BoundedSemaphore(maxconn)
        self._wait_seconds = wait_seconds

    def _get_pool(self) -> psycopg2.pool.ThreadedConnectionPool:
        with self._lock:
            if self._pool is None:
                self._pool = psycopg2.pool.ThreadedConnectionPool(0, self._maxconn, **connection_params())
            return self._pool

    @contextmanager
    def connection(self):
        if not self._slots.acquire(timeout=self._wait_seconds):
            raise DatabaseUnavailable(f"no free database connection within {self._wait_seconds:g} s")
        try:
            pool = self._get_pool()
            try:
                conn = pool.getconn()
            except psycopg2.OperationalError as exc:
                raise DatabaseUnavailable(str(exc).strip()) from exc
            except psycopg2.pool.PoolError as exc:
                raise DatabaseUnavailable(f"connection pool exhausted: {exc}") from exc
            broken = False
            try:
                if conn.autocommit is False:
                    conn.set_session(readonly=True, autocommit=True)
                yield conn
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
                broken = True
                raise DatabaseUnavailable(str(exc).strip()) from exc
            finally:
                pool.putconn(conn, close=broken or bool(conn.closed))
        finally:
            self._slots.release()

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.closeall()
                self._pool = None


POOL_SIZE = int(os.environ.get("DASHBOARD_POOL_SIZE", "4"))
POOL = Pool(maxconn=POOL_SIZE)


def ping(conn) -> bool:
    with conn.cursor() as cur:
        cur.execute("select 1")
        return cur.fetchone()[0] == 1
