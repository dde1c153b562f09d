"""Raw lines out of PostgreSQL once the marts hold them (a passed daily check trims them,
RAW_TABLE_RETENTION_DAYS; ``python -m loader trim``), and back from the bucket before a full
rebuild (``python -m loader restore``): the marts never lose an event, the reconciliation with
raw still catches a missing or an invented row, and a full refresh that would drop history
refuses to run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from loader_testlib import HOUR_PREFIX, PROJECT_ROOT, window_args

from tests.warehouse import rawdata

RECONCILE = "assert_fact_events_reconcile_with_raw"
# what an event is in the marts, whatever load its line came in with
EVENT_COLUMNS = (
    "event_id, event_name, event_at, session_id, anonymous_id, user_key, product_id, quantity,"
    " order_id, order_revenue, page_path, traffic_source, is_bot"
)


def ndjson(payloads: list[dict]) -> bytes:
    return b"".join(json.dumps(p).encode() + b"\n" for p in payloads)


@pytest.fixture
def dbt_paths(loader_env, tmp_path, monkeypatch) -> dict[str, str]:
    paths = {"DBT_TARGET_PATH": str(tmp_path / "target"), "DBT_LOG_PATH": str(tmp_path / "logs")}
    for name, value in paths.items():
        monkeypatch.setenv(name, value)
    return paths


def events(query) -> set[tuple]:
    return set(query(f"select {EVENT_COLUMNS} from analytics.fact_events"))  # noqa: S608 - constant


def check(run_cli, dbt_paths) -> dict:
    result = run_cli("check", "--json", env=dbt_paths)
    return json.loads(result.stdout.strip().splitlines()[-1]) | {"returncode": result.returncode}


def test_trim_keeps_the_marts_whole_and_restore_brings_raw_back(
    put, run_cli, query, loader_env, dbt_paths, dbt
):
    first, second = rawdata.shop_traffic(12, seed=31), rawdata.shop_traffic(8, seed=32)
    put(HOUR_PREFIX + "a.json", ndjson(first[: len(first) // 2]))
    put(HOUR_PREFIX + "b.json", ndjson(first[len(first) // 2 :]))
    loaded = run_cli("load", *window_args(), env=dbt_paths)
    assert loaded.returncode == 0, loaded.stderr[-4000:]
    put(HOUR_PREFIX + "c.json", ndjson(second))
    loaded = run_cli("load", *window_args(), env=dbt_paths)
    assert loaded.returncode == 0, loaded.stderr[-4000:]
    built = events(query)
    lines = len(first) + len(second)
    assert query("select count(*), count(distinct loaded_at) from raw.clickstream_events") == [(lines, 2)]
    assert len(built) > 0

    # a trim before any passed full check removes nothing: nothing has shown the marts hold raw
    early = run_cli("trim", "--days", "0.00001", "--json")
    assert early.returncode == 1 and json.loads(early.stdout)["status"] == "skipped"
    assert query("select count(*) from raw.clickstream_events") == [(lines,)]

    # the daily check passes, then trims every load older than the setting (here: all of them)
    from loader.check import run_full_check
    from loader.settings import Settings

    summary = run_full_check(replace(Settings.from_env(), raw_table_retention_days=0.00001))
    assert summary.status == "passed", summary.error
    assert summary.trim["status"] == "trimmed"
    assert (summary.trim["loads"], summary.trim["lines"], summary.trim["objects"]) == (2, lines, 3)
    assert query("select count(*) from raw.clickstream_events") == [(0,)]
    assert query("select count(*), sum(lines), sum(objects) from raw.trimmed_loads") == [(2, lines, 3)]
    assert events(query) == built, "trimming raw never touches the marts"
    assert query("select count(*) from raw.load_manifest") == [(3,)], "the manifest still knows the objects"
    status = run_cli("status")
    assert f"2 loads trimmed ({lines:,} lines" in status.stdout, status.stdout

    # a load no build has seen yet is never trimmed, however old: a resent event of the first
    # object among its lines, and new traffic
    resent = first[0]
    late = [resent, *rawdata.shop_traffic(3, seed=33)]
    rawdata.insert_raw(loader_env, late, loaded_at=datetime.now(UTC) - timedelta(hours=1))
    unbuilt = run_cli("trim", "--days", "0.00001", "--json")
    assert unbuilt.returncode == 0 and json.loads(unbuilt.stdout)["loads"] == 0, unbuilt.stderr
    assert query("select count(*) from raw.clickstream_events") == [(len(late),)]
    dbt(loader_env, "build", "--exclude", "tag:full_scan")
    with_late = events(query)
    assert len(with_late) == len(built) + len(late) - 1, "the resent event is counted once"

    # the reconciliation compares what raw still holds: it passes, and still fails on a missing
    # row of an untrimmed load and on a row raw never had
    assert check(run_cli, dbt_paths)["status"] == "passed"
    query(
        "create table raw.kept_row as select * from analytics.fact_events where event_id = %s",
        (late[1]["event_id"],),
    )
    query("delete from analytics.fact_events where event_id = %s", (late[1]["event_id"],))
    missing = check(run_cli, dbt_paths)
    assert missing["status"] == "failed" and RECONCILE in missing["failed_tests"]
    query(
        "insert into analytics.fact_events select * from raw.kept_row;"
        " update raw.kept_row set event_id = 'never-in-raw'; insert into analytics.fact_events"
        " select * from raw.kept_row"
    )
    invented = check(run_cli, dbt_paths)
    assert invented["status"] == "failed" and RECONCILE in invented["failed_tests"]
    query("delete from analytics.fact_events where event_id = 'never-in-raw'; drop table raw.kept_row")
    assert check(run_cli, dbt_paths)["status"] == "passed"

    # a full refresh would rebuild the marts from the lines raw still holds: refused, intact
    refused = dbt(loader_env, "build", "--full-refresh", "--select", "fact_events", check=False)
    assert refused.returncode != 0
    assert "would drop history" in refused.stdout and "python -m loader restore" in refused.stdout
    assert events(query) == with_late

    # restore copies the trimmed loads' objects back from the bucket; then a full refresh
    # equals what the incremental builds made
    restored = run_cli("restore", "--json")
    assert restored.returncode == 0, restored.stderr[-4000:]
    outcome = json.loads(restored.stdout)
    assert (outcome["status"], outcome["loads"], outcome["objects"], outcome["events"]) == (
        "restored",
        2,
        3,
        lines,
    )
    assert query("select count(*) from raw.trimmed_loads") == [(0,)]
    assert query("select count(*) from raw.restoring_objects") == [(0,)]
    assert query("select count(*) from raw.clickstream_events") == [(lines + len(late),)]
    assert query("select count(*) from raw.load_manifest") == [(3,)]
    dbt(loader_env, "build", "--full-refresh", "--exclude", "tag:full_scan")
    assert events(query) == with_late
    assert check(run_cli, dbt_paths)["status"] == "passed"

    assert "raw table:        every loaded line" in run_cli("status").stdout
    again = run_cli("restore", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["status"] == "nothing"


def test_a_load_whose_lines_are_gone_is_not_recorded(loader_env, dbt_paths, dbt, run_cli, query):
    """A load the builds saw whose lines raw no longer holds (after a restore they are back as
    newer loads): a trim records nothing for it, so a full refresh is not refused again."""
    rawdata.create_raw_schema(loader_env)
    rawdata.insert_raw(
        loader_env, rawdata.shop_traffic(4, seed=34), loaded_at=datetime.now(UTC) - timedelta(hours=2)
    )
    rawdata.insert_raw(
        loader_env, rawdata.shop_traffic(4, seed=35), loaded_at=datetime.now(UTC) - timedelta(hours=1)
    )
    dbt(loader_env, "build", "--exclude", "tag:full_scan")
    assert check(run_cli, dbt_paths)["status"] == "passed"
    query(
        "delete from raw.clickstream_events where loaded_at = (select min(loaded_at) from raw.clickstream_events)"
    )
    trimmed = run_cli("trim", "--days", "0.00001", "--json")
    assert trimmed.returncode == 0, trimmed.stderr[-2000:]
    assert json.loads(trimmed.stdout)["loads"] == 1, "only the load that still had lines"
    assert query("select count(*), min(lines) > 0 from raw.trimmed_loads") == [(1, True)]


def test_trim_needs_a_setting_or_days(run_cli):
    result = run_cli("trim")
    assert result.returncode == 2
    assert "set RAW_TABLE_RETENTION_DAYS or give --days" in result.stderr


def test_the_retention_setting_is_checked(run_cli):
    result = run_cli("trim", env={"RAW_TABLE_RETENTION_DAYS": "half"})
    assert result.returncode == 2
    assert "RAW_TABLE_RETENTION_DAYS must be a number" in result.stderr


def test_the_lambda_restores_on_its_payload(loader_env, query):
    """``{"run": "restore"}``: the Lambda's way to copy trimmed loads back (nothing trimmed here)."""
    code = (
        "import json; from loader.lambda_handler import handler\n"
        "class Context:\n"
        "    def get_remaining_time_in_millis(self): return 600000\n"
        "print('RESULT ' + json.dumps(handler({'run': 'restore'}, Context())))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env={**os.environ, **loader_env},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    assert result["status"] == "nothing" and result["loads_left"] == 0
    assert query("select count(*) from raw.trimmed_loads") == [(0,)]
