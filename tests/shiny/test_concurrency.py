"""The dashboards' connection pool and side-by-side queries (a filter change runs the page's
queries at once): a busy pool makes callers wait instead of failing, queries given to
`fetch_together` really run at the same time, and their results are the single queries'."""

from __future__ import annotations

import threading

import db
import known_events as k
import pandas as pd
import pytest
import queries


@pytest.fixture
def pool_env(known_db, monkeypatch):
    for name in ("PGHOST", "PGPORT", "PGDATABASE"):
        monkeypatch.setenv(name, known_db[name])
    return known_db


@pytest.fixture
def app_module(pool_env, monkeypatch):
    """`querying` (fetch, fetch_together) on a pool of its own, connected to the test warehouse."""
    import querying

    pool = db.Pool(maxconn=db.POOL_SIZE)
    monkeypatch.setattr(querying, "POOL", pool)
    yield querying
    pool.close()


def test_busy_pool_makes_callers_wait_then_serves_them(pool_env):
    pool = db.Pool(maxconn=1)
    release, second_done = threading.Event(), threading.Event()
    got: list[int] = []

    def second():
        with pool.connection() as conn, conn.cursor() as cur:
            cur.execute("select 2")
            got.append(cur.fetchone()[0])
        second_done.set()

    try:
        with pool.connection() as conn:
            worker = threading.Thread(target=second)
            worker.start()
            # the only connection is taken: the second caller waits (it does not fail)
            assert not second_done.wait(timeout=0.5)
            with conn.cursor() as cur:
                cur.execute("select 1")
                assert cur.fetchone()[0] == 1
            release.set()
        worker.join(timeout=30)
        assert got == [2]
    finally:
        pool.close()


def test_pool_gives_a_clear_error_when_no_connection_frees_up(pool_env):
    pool = db.Pool(maxconn=1, wait_seconds=0.2)
    try:
        with pool.connection():
            with pytest.raises(db.DatabaseUnavailable, match="no free database connection"):
                with pool.connection():
                    pass
        with pool.connection() as conn, conn.cursor() as cur:  # usable again once released
            cur.execute("select 1")
            assert cur.fetchone()[0] == 1
    finally:
        pool.close()


def test_fetch_together_runs_the_queries_at_the_same_time(app_module):
    # each query waits at a barrier for the other: run one after the other, the first one
    # would time out there and fail the test
    barrier = threading.Barrier(2, timeout=20)

    def meet(conn, label: str) -> queries.QueryResult:
        barrier.wait()
        return queries.run(
            conn, f"meet_{label}", "select %(label)s as label, pg_backend_pid() as pid", {"label": label}
        )

    results = app_module.fetch_together(None, {"a": (meet, "a", {}), "b": (meet, "b", {})})
    assert [results[key].df.at[0, "label"] for key in ("a", "b")] == ["a", "b"]
    assert results["a"].df.at[0, "pid"] != results["b"].df.at[0, "pid"]  # two connections


def test_products_page_queries_side_by_side_equal_the_single_queries(app_module, reader):
    filters = {"categories": ["shoes", "bags"], "brands": None, "price_min": 12.0, "price_max": 200.0}
    s, e = k.FIRST_DATE, k.LAST_DATE
    results = app_module.fetch_together(
        None,
        {
            "products": (queries.product_performance, s, e, "revenue", filters),
            "category": (queries.product_rollup, s, e, "product_category", filters),
            "brand": (queries.product_rollup, s, e, "product_brand", filters),
            "rare": (queries.rarely_viewed_products, s, e, filters),
        },
    )
    singles = {
        "products": queries.product_performance(reader, s, e, "revenue", **filters),
        "category": queries.product_rollup(reader, s, e, "product_category", **filters),
        "brand": queries.product_rollup(reader, s, e, "product_brand", **filters),
        "rare": queries.rarely_viewed_products(reader, s, e, **filters),
    }
    for key, single in singles.items():
        assert not results[key].error, results[key].error
        assert not single.empty
        assert results[key].sql == single.sql
        pd.testing.assert_frame_equal(results[key].df, single.df)


def test_one_failing_query_leaves_the_others_alone(app_module):
    s, e = k.FIRST_DATE, k.LAST_DATE
    state = app_module.DbState()
    results = app_module.fetch_together(
        state,
        {
            "bad": (queries.product_performance, s, e, "views; drop table analytics.dim_products", {}),
            "good": (queries.product_rollup, s, e, "product_brand", {}),
        },
    )
    assert results["bad"].error == "That choice is not valid."
    assert not results["good"].error and not results["good"].empty
    assert not state.failed  # a rejected input is not an outage
