"""The 15-minute cycle's tests are scoped to what the cycle wrote (the rows written since the
last good build started), and still catch what a cycle breaks; the daily full check
(`python -m loader check`) tests every row; PostgreSQL refuses a duplicate key at insert time."""

from __future__ import annotations

import json
import subprocess

import psycopg2
import pytest

from loader.load import CYCLE_BUILD_ARGS
from tests.conftest import PROJECT_ROOT, VENV_BIN
from tests.warehouse import rawdata

ORPHAN_TEST = "relationships_fact_order_items_product_id__product_id__ref_dim_products_"


def execute(env: dict[str, str], sql: str, params: dict | None = None) -> None:
    conn = rawdata.connect(env)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
        conn.commit()
    finally:
        conn.close()


def record_good_build(env: dict[str, str]) -> None:
    """A loader run whose build succeeded, started now: the cycle's tests start from it."""
    execute(
        env,
        "insert into raw.load_runs (load_id, started_at, status, dbt_status, dbt_started_at, dbt_finished_at)"
        " values (gen_random_uuid(), now(), 'succeeded', 'success', clock_timestamp(), clock_timestamp())",
    )


def write_orphan_item(env: dict[str, str], order_item_id: str, written_at: str) -> None:
    """An order item of a product dim_products does not know, as if a build wrote it at written_at."""
    execute(
        env,
        "insert into analytics.fact_order_items (order_item_id, order_id, item_number, product_id, quantity,"
        " price, item_revenue, ordered_at, ordered_date, session_id, user_key, device_type, traffic_source,"
        " event_id, inserted_at, dbt_updated_at)"
        " select %(id)s, order_id, 99, 'no-such-product', 1, 1, 1, ordered_at, ordered_date, session_id,"
        " user_key, device_type, traffic_source, event_id, inserted_at, " + written_at + " from"
        " analytics.fact_order_items limit 1",
        {"id": order_item_id},
    )


def run_results(env: dict[str, str]) -> list[dict]:
    path = PROJECT_ROOT / ".local" / "dbt-test" / env["PGDATABASE"] / "target" / "run_results.json"
    return json.loads(path.read_text())["results"]


def failed_tests(env: dict[str, str]) -> set[str]:
    return {r["unique_id"].split(".")[2] for r in run_results(env) if r["status"] in ("fail", "error")}


@pytest.fixture
def built(make_database, dbt):
    env = make_database()
    rawdata.create_raw_schema(env)
    rawdata.insert_raw(env, rawdata.shop_traffic(40, seed=11))
    dbt(env, "build")
    [(items,)] = rawdata.query(env, "select count(*) from analytics.fact_order_items")
    assert items > 0, "the traffic has orders"
    return env


def test_an_orphan_key_written_by_the_cycle_fails_its_build(built, dbt):
    record_good_build(built)
    write_orphan_item(built, "orphan-new", "clock_timestamp()")
    result = dbt(built, "build", *CYCLE_BUILD_ARGS, check=False)
    assert result.returncode != 0
    assert ORPHAN_TEST in failed_tests(built)


def test_the_cycle_tests_only_what_it_wrote_and_the_full_check_everything(built, dbt):
    # an orphan written before the last good build: not this cycle's; the full check finds it
    write_orphan_item(built, "orphan-old", "now() - interval '1 hour'")
    record_good_build(built)
    cycle = dbt(built, "build", *CYCLE_BUILD_ARGS, check=False)
    assert cycle.returncode == 0, cycle.stdout[-4000:]
    (compiled,) = [
        r["compiled_code"] for r in run_results(built) if r["unique_id"].split(".")[2] == ORPHAN_TEST
    ]
    assert "dbt_updated_at >= cast(" in compiled, (
        "the cycle's test reads the rows written since the last good build"
    )

    check = subprocess.run(
        [str(VENV_BIN / "python"), "-m", "loader", "check", "--json"],
        env=dict(
            built,
            DBT_TARGET_PATH=str(PROJECT_ROOT / ".local" / "dbt-test" / built["PGDATABASE"] / "target"),
            DBT_LOG_PATH=str(PROJECT_ROOT / ".local" / "dbt-test" / built["PGDATABASE"] / "logs"),
        ),
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )
    assert check.returncode == 1, check.stderr[-4000:]
    summary = json.loads(check.stdout.strip().splitlines()[-1])
    assert summary["status"] == "failed" and ORPHAN_TEST in summary["failed_tests"]
    rows = rawdata.query(
        built,
        "select status, failures, tests > 100 from analytics.full_checks order by started_at desc limit 1",
    )
    assert rows == [("failed", summary["failures"], True)]
    # the check never touches the cycles' record: the next cycle still builds
    assert rawdata.query(built, "select count(*) from raw.load_runs where dbt_status = 'success'") == [(1,)]


def test_a_duplicate_event_id_is_refused_at_insert(built):
    with pytest.raises(psycopg2.errors.UniqueViolation):
        execute(
            built,
            "insert into analytics.fact_events select * from analytics.fact_events limit 1",
        )
