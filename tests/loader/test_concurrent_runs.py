"""A run started while another is loading (issue 32, item 6): a second ``load``, or a ``forget``,
started a few seconds into a large load, mid-COPY. Neither kills the other (once, the second
run's schema migration wanted raw.load_manifest alone while the first run's COPY waited behind
it for raw.clickstream_events: ``deadlock detected``, the first run abandoned, no build): both
exit 0, every line is loaded exactly once, and the marts are built."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from loader_testlib import HOUR_PREFIX, PROJECT_ROOT, cli_command, event, ndjson, window_args
from test_loader_entrypoints import GOOD_MODEL, dbt_env, make_dbt_project

# the backlog: large objects (9 MB, over a quarter of LOADER_BATCH_MB: each is one streamed COPY
# in a transaction of its own), enough of them that the first run is still copying when the
# second one's migration would have come, 2 s after its start (9 s of COPY here, 2 workers)
OBJECTS = 24
LINES = 40_000
SECOND_RUN_AFTER = 3.0


@pytest.fixture
def put_backlog(put, s3, loader_env) -> Iterator[Callable[[], int]]:
    """put_backlog() puts ``OBJECTS`` objects of ``LINES`` events in the raw bucket and returns
    the lines written. Deleted afterwards: the test session's S3 server holds
    them in memory."""
    keys = [f"{HOUR_PREFIX}big-{i:02d}.json" for i in range(OBJECTS)]

    def _put() -> int:
        body = ndjson(0, LINES)  # the same lines in every object: a line is (object, line number)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda key: put(key, body), keys))
        return OBJECTS * LINES

    yield _put
    s3.delete_objects(Bucket=loader_env["RAW_BUCKET"], Delete={"Objects": [{"Key": key} for key in keys]})


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        cli_command(*args),
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def copying_now(query) -> int:
    """The loader's COPY statements running at this moment."""
    return query(
        "select count(*) from pg_stat_progress_copy as p inner join pg_stat_activity as a using (pid)"
        " where a.datname = current_database() and a.application_name = 'clickstream-loader'"
    )[0][0]


def second_run_mid_copy(
    query, env: dict[str, str], first: list[str], second: list[str], before_second: str | None = None
):
    """Start ``first``; ``SECOND_RUN_AFTER`` seconds later, while its COPY runs and objects are
    left, run the SQL ``before_second``, then start ``second``; both outputs ``(returncode,
    stdout, stderr)``."""
    started = time.monotonic()
    runs = [start(first, env)]
    try:
        time.sleep(SECOND_RUN_AFTER)
        deadline = time.monotonic() + 10  # a busy machine: give its COPY a moment to start
        copying = 0
        while not copying and runs[0].poll() is None and time.monotonic() < deadline:
            copying = copying_now(query)
            time.sleep(0 if copying else 0.05)
        assert runs[0].poll() is None, runs[0].communicate()[1][-3000:]
        assert copying, "the first run was not copying when the second started"
        objects_loaded = query("select count(*) from raw.load_manifest where object_key like %s", ("%big-%",))
        assert objects_loaded[0][0] < OBJECTS - 2, "the backlog was nearly loaded: make it larger"
        if before_second:
            query(before_second)
        runs.append(start(second, env))
        outputs = [(p, *p.communicate(timeout=150)) for p in runs]
    finally:
        for p in runs:
            if p.poll() is None:
                p.kill()
                p.wait()
    print(f"both runs ended after {time.monotonic() - started:.1f}s")  # noqa: T201 (pytest -s)
    return [(p.returncode, out, err) for p, out, err in outputs]


def assert_loaded_once(query, lines: int) -> None:
    assert query(
        "select count(*), count(distinct (bucket, object_key, line_number)) from raw.clickstream_events"
        " where object_key like %s",
        ("%big-%",),
    ) == [(lines, lines)]
    assert query(
        "select count(*), sum(events_loaded) from raw.load_manifest where object_key like %s", ("%big-%",)
    ) == [(OBJECTS, lines)]


def project_env(loader_env, tmp_path) -> dict[str, str]:
    project = make_dbt_project(tmp_path / "proj", GOOD_MODEL)
    env = dict(os.environ)
    env.update(loader_env)
    env.update(dbt_env(tmp_path, project))
    return env


@pytest.mark.parametrize("schema", ["current", "out of date"])
def test_a_load_started_mid_copy_of_another_takes_what_is_left_and_neither_dies(
    schema, put_backlog, query, loader_env, tmp_path
):
    """With the schema current the second run takes no lock to migrate; out of date (a new
    schema.sql, a new month) it migrates between two of the first run's transactions."""
    lines = put_backlog()
    env = project_env(loader_env, tmp_path)
    load = ["load", "--json", *window_args()]
    stale = (
        "update raw.schema_version set version = 'an older schema.sql'" if schema == "out of date" else None
    )
    (code_a, out_a, err_a), (code_b, out_b, err_b) = second_run_mid_copy(query, env, load, load, stale)

    assert "deadlock" not in err_a + err_b
    assert code_a == 0, err_a[-3000:]
    assert code_b == 0, err_b[-3000:]
    first, second = (json.loads(out.strip().splitlines()[-1]) for out in (out_a, out_b))
    assert first["status"] == second["status"] == "succeeded"
    assert first["objects"] + second["objects"] == OBJECTS
    assert first["events"] + second["events"] == lines
    # the second run says that it found the first one loading, and left it the objects it holds
    assert "is still loading" in err_b, err_a[-3000:] + err_b[-3000:]
    assert ("Schema raw migrated" in err_b) == (schema == "out of date"), err_b[-3000:]
    assert_loaded_once(query, lines)
    runs = query("select status, dbt_status from raw.load_runs order by started_at")
    assert [status for status, _ in runs] == ["succeeded", "succeeded"]
    assert "success" in {dbt for _, dbt in runs} and {dbt for _, dbt in runs} <= {"success", "skipped"}
    # the marts hold every line
    assert query("select sum(events) from probe.events_per_object") == [(lines,)]


def test_forget_started_mid_copy_of_a_load_erases_and_neither_dies(
    put, put_backlog, query, loader_env, tmp_path
):
    env = project_env(loader_env, tmp_path)
    # a person's lines, loaded before the backlog comes
    zed = b"".join(
        json.dumps(event(900_000 + i, user_id="user-zed", anonymous_id="anon-zed")).encode() + b"\n"
        for i in range(3)
    )
    put(f"{HOUR_PREFIX}zed.json", zed + ndjson(900_100, 5))
    before = subprocess.run(
        cli_command("load", "--no-build", *window_args()),
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert before.returncode == 0, before.stderr[-3000:]
    lines = put_backlog()

    load = ["load", "--json", *window_args()]
    forget = ["forget", "--json", "--user-id", "user-zed"]
    (code_load, out_load, err_load), (code_forget, out_forget, err_forget) = second_run_mid_copy(
        query, env, load, forget
    )

    assert "deadlock" not in err_load + err_forget
    assert code_load == 0, err_load[-3000:]
    assert code_forget == 0, err_forget[-3000:]
    loaded = json.loads(out_load.strip().splitlines()[-1])
    assert (loaded["status"], loaded["objects"], loaded["events"]) == ("succeeded", OBJECTS, lines)
    assert json.loads(out_forget)["status"] == "erased"
    assert_loaded_once(query, lines)
    assert query("select count(*) from raw.clickstream_events where object_key like %s", ("%zed.json",)) == [
        (5,)
    ]
    assert query("select count(*) from raw.clickstream_events where payload->>'user_id' = 'user-zed'") == [
        (0,)
    ]
    # the load's build waited for forget's recount (the build lock), then ran
    assert query("select status, dbt_status from raw.load_runs order by started_at") == [
        ("succeeded", None),
        ("succeeded", "success"),
    ]
    assert query("select sum(events) from probe.events_per_object") == [(lines + 5,)]
