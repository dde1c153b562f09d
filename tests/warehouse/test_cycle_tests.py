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


GUARD_TEST = "assert_new_raw_lines_reach_fact_events"


def test_new_valid_lines_that_never_reach_fact_events_fail_the_build(built, dbt):
    """The guard of issue 22: a watermark moved past lines it has not seen (here fact_events's
    run record, set a day ahead) leaves the cycle's new lines out of fact_events while every
    model succeeds; the build fails on the guard, which counts the lines left out."""
    record_good_build(built)
    new_lines = rawdata.insert_raw(built, rawdata.shop_traffic(3, seed=12))
    execute(
        built,
        "update intermediate.dbt_incremental_runs set last_run_started_at = now() + interval '1 day'"
        " where model_name = 'fact_events'",
    )
    result = dbt(built, "build", *CYCLE_BUILD_ARGS, check=False)
    assert result.returncode != 0
    assert GUARD_TEST in failed_tests(built)
    (guard,) = [r for r in run_results(built) if r["unique_id"].split(".")[2] == GUARD_TEST]
    assert guard["failures"] == 1 and "loaded_at > cast(" in guard["compiled_code"]
    [(missing,)] = rawdata.query(
        built,
        "select count(*) from staging.stg_clickstream__events as staged where staged.is_valid"
        " and not staged.is_bot and staged.loaded_at > now() - interval '1 hour' and not exists"
        " (select 1 from analytics.fact_events as f where f.event_id = staged.event_id)",
    )
    assert 0 < missing <= new_lines


def test_the_guard_passes_once_the_lines_are_built(built, dbt):
    """The same cycle without the moved watermark: the new lines reach fact_events and the
    guard passes."""
    record_good_build(built)
    rawdata.insert_raw(built, rawdata.shop_traffic(3, seed=12))
    result = dbt(built, "build", *CYCLE_BUILD_ARGS, check=False)
    assert result.returncode == 0, result.stdout[-4000:]
    (guard,) = [r for r in run_results(built) if r["unique_id"].split(".")[2] == GUARD_TEST]
    assert guard["status"] == "pass"


def test_the_guard_reads_no_raw_line_before_the_first_good_build(built):
    """The fixture's build was the first (no good build in raw.load_runs): the guard compared
    nothing (the reconciliation with raw checks a first build), instead of every raw line."""
    (guard,) = [r for r in run_results(built) if r["unique_id"].split(".")[2] == GUARD_TEST]
    assert guard["status"] == "pass" and "where 1 = 0" in guard["compiled_code"]
