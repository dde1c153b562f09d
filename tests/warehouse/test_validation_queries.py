"""The README's four validation queries, run verbatim in psql as PGUSER with no schema prefix
(the database's search_path reaches analytics), agree with counts computed from the raw lines."""

from __future__ import annotations

import shutil
import subprocess

import pytest

QUERIES = [
    "SELECT COUNT(*) AS total_events FROM fact_events;",
    "SELECT event_name, COUNT(*) AS total_events FROM fact_events GROUP BY event_name "
    "ORDER BY total_events DESC;",
    "SELECT product_id, product_name, COUNT(*) AS view_count FROM fact_events "
    "WHERE event_name = 'product_view' GROUP BY product_id, product_name ORDER BY view_count DESC LIMIT 10;",
    "SELECT product_id, SUM(CASE WHEN event_name = 'product_view' THEN 1 ELSE 0 END) AS product_views, "
    "SUM(CASE WHEN event_name = 'add_to_cart' THEN 1 ELSE 0 END) AS add_to_cart_events FROM fact_events "
    "GROUP BY product_id ORDER BY product_views DESC LIMIT 10;",
]


def psql(env: dict[str, str], query: str) -> list[list[str]]:
    """Rows of one query through the psql client, connected as PGUSER to PGDATABASE."""
    binary = shutil.which("psql")
    if binary is None:
        pytest.fail("the psql client is required (apt-get install postgresql-client)")
    result = subprocess.run(
        [binary, "-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", query],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return [line.split("\t") for line in result.stdout.splitlines() if line]


def test_total_events(generated_warehouse):
    env, _lines, expected = generated_warehouse
    [[total]] = psql(env, QUERIES[0])
    assert int(total) == len(expected.events)


def test_events_by_name(generated_warehouse):
    env, _lines, expected = generated_warehouse
    rows = psql(env, QUERIES[1])
    assert {name: int(count) for name, count in rows} == dict(expected.by_event_name())
    counts = [int(count) for _name, count in rows]
    assert counts == sorted(counts, reverse=True)


def test_top_viewed_products_one_row_per_product(generated_warehouse):
    env, _lines, expected = generated_warehouse
    rows = psql(env, QUERIES[2])
    views = expected.product_views()
    names = expected.latest_product_names()
    assert len(rows) == min(10, len(views))
    assert len({product_id for product_id, _name, _count in rows}) == len(rows)
    for product_id, name, count in rows:
        assert int(count) == views[product_id]
        assert name == names[product_id]
    top = sorted(views.values(), reverse=True)[: len(rows)]
    assert [int(count) for *_rest, count in rows] == top


def test_views_and_adds_to_cart_per_product(generated_warehouse):
    env, _lines, expected = generated_warehouse
    rows = psql(env, QUERIES[3])
    views = expected.product_views()
    adds = expected.adds_to_cart()
    assert len(rows) == 10
    for product_id, product_views, add_to_cart_events in rows:
        key = product_id or None
        assert int(product_views) == views.get(key, 0)
        assert int(add_to_cart_events) == adds.get(key, 0)
    # events without a product (page views, purchases, ...) group under a null product_id
    per_product = sorted([*views.values(), 0], reverse=True)[:10]
    assert sorted((int(r[1]) for r in rows), reverse=True) == per_product
