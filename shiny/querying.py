"""Running the dashboards' queries safely: on a pooled connection, side by side, and with a
session's watch on the database (the outage banner, and every widget re-run on recovery).

A failed query never raises into Shiny: it gives a `QueryResult` with a plain message that
the widget shows instead of its rows. A database error's own text goes to the log, never to
the browser, but for a funnel spec the warehouse refuses (`queries.Refused`, SQLSTATE 22023):
its message names what is wrong with the person's question, so the widget shows it. Inputs are checked before a query runs (`inputs.py`): a refused value gives the
widget a plain message and no query at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import psycopg2
from db import POOL, POOL_SIZE, DatabaseUnavailable, ping
from inputs import BAD_CHOICE, InvalidInput
from queries import QueryResult, Refused

from shiny import reactive

log = logging.getLogger("dashboards.app")

QUERY_FAILED = "The query failed; the error is in the dashboard's log."
REFUSED = "The warehouse cannot answer this funnel"
POLL_SECONDS_UP = 10
POLL_SECONDS_DOWN = 2

# A page whose filters feed several independent queries runs them side by side (each on a
# pooled connection of its own): the page waits for the slowest query, not for their sum.
QUERY_THREADS = ThreadPoolExecutor(max_workers=POOL_SIZE, thread_name_prefix="query")


class DbState:
    """Per-session memory of a failed query, so the watcher refreshes everything on recovery."""

    def __init__(self) -> None:
        self.failed = False
        self.choices_missing = False


def fetch(state: DbState | None, fn: Callable[..., QueryResult], *args, **kwargs) -> QueryResult:
    """Run one query function on a pooled connection; turn failures into a result with an error."""
    try:
        with POOL.connection() as conn:
            return fn(conn, *args, **kwargs)
    except DatabaseUnavailable as exc:
        if state is not None:
            state.failed = True
        log.warning("database unavailable", extra={"query": fn.__name__, "error": str(exc)[:200]})
        return QueryResult(name=fn.__name__, sql="", error="The database cannot be reached right now.")
    except Refused as exc:  # the person's question cannot be answered: say why, in their words
        log.info("refused by the warehouse", extra={"query": fn.__name__, "error": str(exc)[:200]})
        return QueryResult(name=fn.__name__, sql=exc.sql, error=f"{REFUSED}: {exc}.")
    except (ValueError, TypeError, ArithmeticError) as exc:  # an input outside its whitelist / type
        log.warning("rejected input", extra={"query": fn.__name__, "error": str(exc)[:200]})
        return QueryResult(name=fn.__name__, sql="", error=BAD_CHOICE)
    except psycopg2.errors.UndefinedTable:
        return QueryResult(
            name=fn.__name__, sql="", error="The warehouse has no marts yet: run the loader / dbt build."
        )
    except psycopg2.Error:  # e.g. a statement timeout: not an outage, no automatic retry
        log.exception("query failed", extra={"query": fn.__name__})
        return QueryResult(name=fn.__name__, sql="", error=QUERY_FAILED)


def rejected(key: str, exc: InvalidInput) -> QueryResult:
    """The result of a query that did not run because one of its inputs was refused."""
    log.warning("rejected input", extra={"query": key, "error": str(exc)})
    return QueryResult(name=key, sql="", error=str(exc))


def plan(call: Callable[[], tuple]) -> tuple | InvalidInput:
    """Read a widget's inputs into its query call, or the `InvalidInput` that refused them."""
    try:
        return call()
    except InvalidInput as exc:
        return exc


def fetch_together(state: DbState | None, calls: dict[str, tuple]) -> dict[str, QueryResult]:
    """Run `{key: (query function, *args, {kwargs})}` concurrently; results by key, in `fetch`'s
    form (a failed query gives a result with an error, the others are unaffected)."""
    futures = {
        key: QUERY_THREADS.submit(fetch, state, fn, *args, **kwargs)
        for key, (fn, *args, kwargs) in calls.items()
    }
    return {key: future.result() for key, future in futures.items()}


class SessionDb:
    """One browser session's view of the database. Create it inside the server function: it
    pings the database (every 10 s, every 2 s while it is down) and, when it answers again after
    a failure, bumps `epoch`, which every query of the session depends on."""

    def __init__(self, choices_missing: bool = False) -> None:
        self.state = DbState()
        self.state.choices_missing = choices_missing
        self.up = reactive.value(True)
        self.epoch = reactive.value(0)

        @reactive.effect
        def _watch_database():
            with reactive.isolate():
                was_up = self.up.get()
            reactive.invalidate_later(
                POLL_SECONDS_UP if was_up and not self.state.failed else POLL_SECONDS_DOWN
            )
            try:
                with POOL.connection() as conn:
                    ok = ping(conn)
            except (DatabaseUnavailable, psycopg2.Error):
                ok = False
            if ok and (self.state.failed or not was_up):
                self.state.failed = False
                with reactive.isolate():
                    self.epoch.set(self.epoch.get() + 1)
            self.up.set(ok)

    def q(self, fn, *args, **kwargs) -> QueryResult:
        """One query, re-run when the database comes back."""
        self.epoch.get()
        return fetch(self.state, fn, *args, **kwargs)

    def checked(self, key: str, call: Callable[[], tuple]) -> QueryResult:
        """One query whose inputs `call()` reads and checks (as in `side_by_side`)."""
        planned = plan(call)
        if isinstance(planned, InvalidInput):
            return rejected(key, planned)
        fn, *args, kwargs = planned
        return self.q(fn, *args, **kwargs)

    def side_by_side(self, shared: Callable[[], object], calls: dict[str, Callable[[], tuple]]) -> dict:
        """One reactive result per widget of a page, its queries run side by side.

        `calls[key]()` reads the inputs of one widget's query and returns it as
        `(query function, *args, {kwargs})`; `shared()` reads the inputs all of them depend on
        (dates, filters). A change of those runs every query of the page at once
        (`fetch_together`): the page waits for its slowest query, not for their sum. A change
        of an input only one widget reads (a ranking, a breakdown) re-runs only that widget's
        query, on its own."""

        @reactive.calc
        def batch() -> tuple[dict, dict]:
            self.epoch.get()
            try:
                shared()
            except InvalidInput:
                pass  # each widget's own call says so
            with reactive.isolate():
                planned = {key: plan(call) for key, call in calls.items()}
            valid = {key: call for key, call in planned.items() if not isinstance(call, InvalidInput)}
            return planned, fetch_together(self.state, valid)

        def widget(key: str) -> Callable[[], QueryResult]:
            @reactive.calc
            def result() -> QueryResult:
                planned, results = batch()
                call = plan(calls[key])
                if isinstance(call, InvalidInput):
                    return rejected(key, call)
                if call == planned[key] and key in results:
                    return results[key]
                fn, *args, kwargs = call
                return self.q(fn, *args, **kwargs)

            return result

        return {key: widget(key) for key in calls}
