"""The loader's entry points: the CLI (load, status, schedule, dry run, a local directory),
the dbt step, and the Lambda handler with its credentials from Secrets Manager."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from loader_testlib import HOUR_PREFIX, PROJECT_ROOT, cli_command, ndjson, window_args


def make_dbt_project(root: Path, model_sql: str) -> Path:
    """A tiny dbt project of the test's own, using the real profile (profiles.yml at the root)."""
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text(
        "name: loader_probe\nversion: '1.0'\nconfig-version: 2\nprofile: clickstream_analytics\n"
        "models:\n  loader_probe:\n    +materialized: table\n"
    )
    (root / "models" / "events_per_object.sql").write_text(model_sql)
    return root


def dbt_env(tmp_path: Path, project: Path) -> dict[str, str]:
    return {
        "DBT_PROJECT_DIR": str(project),
        "DBT_PROFILES_DIR": str(PROJECT_ROOT),
        "DBT_TARGET_PATH": str(tmp_path / "target"),
        "DBT_LOG_PATH": str(tmp_path / "logs"),
        "DBT_SCHEMA": "probe",
    }


GOOD_MODEL = "select object_key, count(*) as events from raw.clickstream_events group by 1\n"


def test_load_then_dbt_build_logs_each_model(put, run_cli, query, tmp_path):
    put(HOUR_PREFIX + "a.json", ndjson(0, 30))
    put(HOUR_PREFIX + "b.json", ndjson(30, 12))
    project = make_dbt_project(tmp_path / "proj", GOOD_MODEL)
    result = run_cli("load", *window_args(), env=dbt_env(tmp_path, project))
    assert result.returncode == 0, result.stderr + result.stdout
    assert "Inserted 42 rows into raw.clickstream_events" in result.stderr
    assert "dbt model events_per_object: success, 2 rows affected" in result.stderr
    assert query("select object_key, events from probe.events_per_object order by 1") == [
        (HOUR_PREFIX + "a.json", 30),
        (HOUR_PREFIX + "b.json", 12),
    ]
    assert query("select dbt_status, models_built from raw.load_runs") == [("success", 1)]


def test_dbt_failure_exits_non_zero_and_the_load_stays_committed(put, run_cli, query, tmp_path):
    put(HOUR_PREFIX + "a.json", ndjson(0, 7))
    broken = make_dbt_project(tmp_path / "broken", "select * from raw.no_such_table\n")
    result = run_cli("load", *window_args(), env=dbt_env(tmp_path, broken))
    assert result.returncode == 1
    assert "dbt build failed" in result.stderr
    assert query("select count(*) from raw.clickstream_events") == [(7,)]
    assert query("select status, dbt_status from raw.load_runs") == [("succeeded", "failed")]
    # nothing new to load, but the last build failed: the next run builds again
    fixed = make_dbt_project(tmp_path / "fixed", GOOD_MODEL)
    again = run_cli("load", *window_args(), env=dbt_env(tmp_path, fixed))
    assert again.returncode == 0, again.stderr
    assert query("select events from probe.events_per_object") == [(7,)]


def test_dry_run_writes_nothing(put, run_cli, query):
    put(HOUR_PREFIX + "a.json", ndjson(0, 5))
    result = run_cli("load", "--dry-run", "--no-build", *window_args())
    assert result.returncode == 0, result.stderr
    assert f"Would load {HOUR_PREFIX}a.json" in result.stderr
    assert query("select to_regclass('raw.load_runs')") == [(None,)]


def test_local_directory_source_and_status(run_cli, query, tmp_path):
    hour = tmp_path / "bucket" / HOUR_PREFIX
    hour.mkdir(parents=True)
    (hour / "a.json").write_bytes(ndjson(0, 8))
    (hour / "b.json").write_bytes(b'{"ok": 1}\nnope\n')
    result = run_cli("load", "--source", str(tmp_path / "bucket"), "--no-build", *window_args())
    assert result.returncode == 0, result.stderr
    assert "Listing files under prefix events/2024/05/01/10/" in result.stderr
    assert "Read 2 files, parsed 10 events." in result.stderr
    assert query("select bucket, count(*) from raw.clickstream_events group by 1") == [
        (str((tmp_path / "bucket").resolve()), 9)
    ]
    status = run_cli("status")
    assert status.returncode == 0, status.stderr
    assert "events loaded:    9" in status.stdout
    assert "lines rejected:   1" in status.stdout
    assert "succeeded" in status.stdout
    assert "full check:       not run yet (python -m loader check)" in status.stdout
    as_json = json.loads(run_cli("status", "--json").stdout)
    assert as_json["events_loaded"] == 9 and as_json["lag_seconds"] >= 0
    assert as_json["runs"][0]["objects"] == 2


@contextmanager
def schedule_running(env: dict[str, str], log_path: Path, *args: str, stop_timeout: float = 20):
    """``python -m loader schedule ARGS`` in the background, its output in log_path; stopped
    with Ctrl-C (SIGINT) at the end. Yields the process."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cli_command("schedule", *args), cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_schedule_runs_again_and_survives_a_failing_run(loader_env, query, tmp_path):
    """The local stand-in for clickstream-etl-schedule: the first runs fail (the bucket does
    not exist yet), the loop goes on, and once the bucket has a file the next run loads it."""
    s3 = boto3.client("s3", endpoint_url=loader_env["AWS_ENDPOINT_URL"], region_name=loader_env["AWS_REGION"])
    bucket = loader_env["RAW_BUCKET"] + "-late"
    env = dict(os.environ)
    env.update(loader_env, RAW_BUCKET=bucket)
    log_path = tmp_path / "schedule.log"
    with schedule_running(env, log_path, "--every", "1", "--no-build", "--lookback-hours", "2") as proc:
        deadline = time.monotonic() + 60
        while "Loader run failed" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "NoSuchBucket" in log_path.read_text()
        s3.create_bucket(Bucket=bucket)
        key = datetime.now(UTC).strftime("events/%Y/%m/%d/%H/") + "now.json"
        s3.put_object(Bucket=bucket, Key=key, Body=ndjson(0, 6))
        while time.monotonic() < deadline:
            if query("select to_regclass('raw.clickstream_events')")[0][0]:
                if query("select count(*) from raw.clickstream_events")[0][0] == 6:
                    break
            time.sleep(0.2)
        assert query("select count(*) from raw.clickstream_events") == [(6,)]
        assert proc.poll() is None, "the schedule loop stopped"
    assert proc.returncode == 0
    statuses = [s for (s,) in query("select status from raw.load_runs order by started_at")]
    assert "failed" in statuses and statuses.count("succeeded") >= 1
    assert "Schedule stopped after" in log_path.read_text()


def test_schedule_runs_the_full_check_once_a_day_after_the_first_build(put, loader_env, query, tmp_path):
    """The local stand-in for clickstream-etl-full-check: once the marts are built the schedule
    runs the full check (every data test, recorded in raw.full_checks), then not again until
    LOADER_FULL_CHECK_HOURS have passed, while the cycles go on."""
    put(datetime.now(UTC).strftime("events/%Y/%m/%d/%H/") + "now.json", ndjson(0, 5))
    project = make_dbt_project(tmp_path / "proj", GOOD_MODEL)
    (project / "models" / "schema.yml").write_text(
        "version: 2\nmodels:\n  - name: events_per_object\n    columns:\n"
        "      - name: object_key\n        data_tests: [not_null]\n"
    )
    env = dict(os.environ)
    env.update(loader_env, **dbt_env(tmp_path, project))
    log_path = tmp_path / "schedule.log"
    with schedule_running(env, log_path, "--every", "1", "--lookback-hours", "2", stop_timeout=60) as proc:
        deadline = time.monotonic() + 120
        checks: list = []
        while time.monotonic() < deadline:
            if query("select to_regclass('raw.full_checks')")[0][0]:
                checks = query(
                    "select status, tests, failures from raw.full_checks where status <> 'running'"
                )
                if checks:
                    break
            time.sleep(0.5)
        assert checks == [("passed", 1, 0)], log_path.read_text()[-3000:]
        # two more cycles: no second check within the day
        runs = query("select count(*) from raw.load_runs")[0][0]
        while query("select count(*) from raw.load_runs")[0][0] < runs + 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert query("select count(*) from raw.full_checks") == [(1,)]
        assert proc.poll() is None, "the schedule loop stopped"
    assert "Full check passed: 1 tests, 0 failed" in log_path.read_text()


@pytest.fixture
def secret_arn(loader_env) -> str:
    client = boto3.client(
        "secretsmanager", endpoint_url=loader_env["AWS_ENDPOINT_URL"], region_name=loader_env["AWS_REGION"]
    )
    secret = {
        "username": loader_env["PGUSER"],
        "password": loader_env["PGPASSWORD"],
        "host": loader_env["PGHOST"],
        "port": int(loader_env["PGPORT"]),
        "dbname": loader_env["PGDATABASE"],
    }
    name = f"clickstream-db-{loader_env['PGDATABASE']}"
    return client.create_secret(Name=name, SecretString=json.dumps(secret))["ARN"]


def lambda_env(loader_env, tmp_path, secret_arn) -> dict[str, str]:
    """The handler's environment in Lambda: the database settings come only from the secret."""
    project = make_dbt_project(tmp_path / "proj", GOOD_MODEL)
    env = dict(os.environ)
    env.update(loader_env)
    env.update(dbt_env(tmp_path, project))
    env.update(
        AWS_LAMBDA_FUNCTION_NAME="clickstream-etl-lambda",
        DB_SECRET_ARN=secret_arn,
        PGHOST="192.0.2.1",
        PGPORT="1",
        PGPASSWORD="wrong",
        PGDATABASE="wrong",
        LOADER_BUILD_MARGIN_SECONDS="300",
    )
    return env


def invoke_lambda(env: dict[str, str], millis_left: int) -> tuple[dict, subprocess.CompletedProcess]:
    """Call the handler in a process of its own with a Lambda context that has ``millis_left``
    of the invocation left; (its summary, the process)."""
    code = (
        "import json; from loader.lambda_handler import handler\n"
        "class Context:\n"
        f"    def get_remaining_time_in_millis(self): return {millis_left}\n"
        "print('RESULT ' + json.dumps(handler({}, Context())))"
    )
    result = subprocess.run(
        [env.get("PYTHON", os.sys.executable), "-c", code],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    summary = json.loads(next(line for line in lines if line.startswith("RESULT "))[len("RESULT ") :])
    return summary, result


def test_lambda_handler_loads_then_builds_with_credentials_from_secrets_manager(
    loader_env, put, query, tmp_path, secret_arn, run_cli
):
    key = datetime.now(UTC).strftime("events/%Y/%m/%d/%H/") + "lambda.json"
    put(key, ndjson(0, 11) + b"broken\n")
    # 10 minutes left: the run keeps LOADER_BUILD_MARGIN_SECONDS (300) for dbt and loads
    summary, result = invoke_lambda(lambda_env(loader_env, tmp_path, secret_arn), 600_000)
    lines = result.stdout.strip().splitlines()
    assert summary["status"] == "succeeded"
    assert (summary["objects"], summary["events"], summary["rejects"], summary["models_built"]) == (
        1,
        11,
        1,
        1,
    )
    # CloudWatch: one JSON object per line, with the lines operators look for, and no secrets
    logs = [json.loads(line) for line in lines if not line.startswith("RESULT ")]
    messages = [entry.get("message") or entry.get("info", {}).get("msg", "") for entry in logs]
    assert any(m.startswith("Listing S3 objects under prefix events/") for m in messages)
    assert "Inserted 11 rows into raw.clickstream_events" in messages
    assert any("dbt model events_per_object: success" in m for m in messages)
    assert '"password":' not in result.stdout + result.stderr
    assert any(
        entry.get("secret_fields") == ["dbname", "host", "password", "port", "username"] for entry in logs
    )
    assert query("select count(*) from probe.events_per_object") == [(1,)]
    # one summary shape: the CLI's --json prints the same keys the Lambda returns
    cli = run_cli("load", "--json", "--no-build", *window_args())
    assert cli.returncode == 0, cli.stderr
    assert set(json.loads(cli.stdout.strip().splitlines()[-1])) == set(summary)
    assert summary["objects_left"] == 0 and summary["dbt_status"] == "success"


def test_lambda_handler_with_less_time_left_than_the_build_margin_leaves_the_object(
    loader_env, put, query, tmp_path, secret_arn
):
    """200 s left against the 300 s kept for dbt build: the run takes no object; the next
    invocation (with time to spare) loads it."""
    key = datetime.now(UTC).strftime("events/%Y/%m/%d/%H/") + "lambda.json"
    put(key, ndjson(0, 11))
    env = lambda_env(loader_env, tmp_path, secret_arn)
    cut, result = invoke_lambda(env, 200_000)
    assert (cut["status"], cut["objects"], cut["events"], cut["objects_left"]) == ("succeeded", 0, 0, 1)
    assert "Stopping early: 1 objects left for the next run" in result.stdout
    assert query("select count(*) from raw.clickstream_events") == [(0,)]
    roomy, _ = invoke_lambda(env, 600_000)
    assert (roomy["objects"], roomy["events"], roomy["objects_left"]) == (1, 11, 0)


def test_lambda_handler_raises_with_the_summary_when_the_run_fails(loader_env):
    """A failed run must count in the function's Errors metric (and reach its failure queue)."""
    env = dict(os.environ)
    env.update(
        loader_env, AWS_LAMBDA_FUNCTION_NAME="clickstream-etl-lambda", PGPORT="1", PGCONNECT_TIMEOUT="3"
    )
    code = (
        "import json\n"
        "from loader.lambda_handler import EtlRunFailed, handler\n"
        "try:\n"
        "    handler({'source': 'aws.events'}, None)\n"
        "except EtlRunFailed as exc:\n"
        "    print('FAILED ' + str(exc))\n"
    )
    result = subprocess.run(
        [os.sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    failed = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("FAILED "))[7:])
    assert failed["status"] == "failed" and failed["events"] == 0
    assert "cannot connect to PostgreSQL at 127.0.0.1:1/" in failed["error"]
    errors = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert any(e["level"] == "ERROR" and "cannot connect to PostgreSQL" in e["message"] for e in errors)
