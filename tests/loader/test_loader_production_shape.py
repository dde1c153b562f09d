"""The data shape production makes: thousands of small objects (one per ingest request),
a run cut short by its time budget, a process killed between batches or during its build,
and two runs at once. Each event is loaded exactly once, and the marts always catch up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import psycopg2
from loader_testlib import (
    HOUR_PREFIX,
    PROJECT_ROOT,
    FaultProxy,
    cli_command,
    kill_loader_once,
    ndjson,
    wait_for_loader_sessions_to_end,
    window_args,
)
from test_loader_entrypoints import GOOD_MODEL, dbt_env, make_dbt_project


def req(number: int) -> str:
    """The key of small object ``number``."""
    return f"{HOUR_PREFIX}req-{number:05d}.json"


def small_objects(put, count: int, per: int, start: int = 0) -> dict[str, int]:
    """``count`` objects of ``per`` events each (distinct event ids); key -> events."""
    keys = {}
    for i in range(count):
        key = req(start + i)
        put(key, ndjson((start + i) * per, per))
        keys[key] = per
    return keys


def loaded_once(query) -> tuple[int, int]:
    """(rows, distinct (object, line)) in raw.clickstream_events."""
    return query("select count(*), count(distinct (object_key, line_number)) from raw.clickstream_events")[0]


class CallsBudget:
    """A time budget that runs out after ``calls`` looks at it (one look per batch or large object)."""

    def __init__(self, calls: int) -> None:
        self.calls = calls

    def expired(self) -> bool:
        self.calls -= 1
        return self.calls < 0


def test_many_small_objects_are_committed_in_batches_and_a_bad_one_blocks_nothing(
    put, load, query, monkeypatch
):
    monkeypatch.setenv("LOADER_BATCH_OBJECTS", "40")
    keys = small_objects(put, 150, 3)
    # a bad line in one object, and a row the table refuses in another (a constraint an operator
    # added): the batch holding it is refused whole and copied again object by object
    put(f"{HOUR_PREFIX}req-00057.json", ndjson(57 * 3, 2) + b"not json\n")
    put(f"{HOUR_PREFIX}req-00090.json", ndjson(90 * 3, 2) + b'{"poison": 1}\n')
    from loader import schema
    from loader.db import connect

    conn = connect()
    schema.migrate(conn)
    conn.close()
    query("alter table raw.clickstream_events add constraint no_poison check (payload->>'poison' is null)")

    summary = load()
    assert (summary.status, summary.objects, summary.failed_objects) == ("succeeded", 150, 0)
    assert (summary.events, summary.rejects) == (150 * 3 - 2, 2)
    assert loaded_once(query) == (448, 448)
    assert query("select count(*), sum(events_loaded), sum(lines_rejected) from raw.load_manifest") == [
        (150, 448, 2)
    ]
    assert query("select reason from raw.rejected_lines where object_key like '%%00090.json'")[0][
        0
    ].startswith("refused by PostgreSQL")
    # committed in batches: each transaction stamps its rows with one loaded_at. In listing
    # order the batches are objects 0-39, 40-79, 80-119 and 120-149; the third, holding
    # req-00090, was refused whole and its 40 objects went one by one: 3 + 40 transactions
    per_transaction = query(
        "select min(object_key), max(object_key), count(*) from raw.load_manifest group by loaded_at order by 1"
    )
    assert len(per_transaction) == 3 + 40, per_transaction
    assert [row for row in per_transaction if row[2] > 1] == [
        (req(0), req(39), 40),
        (req(40), req(79), 40),
        (req(120), req(149), 30),
    ]
    assert [first for first, _last, n in per_transaction if n == 1] == [req(i) for i in range(80, 120)]
    assert query("select count(distinct loaded_at) from raw.clickstream_events") == [(3 + 40,)]
    # the run's counters were kept as the batches committed
    assert query("select objects, events, rejects, status from raw.load_runs") == [(150, 448, 2, "succeeded")]
    assert set(keys) == {k for (k,) in query("select object_key from raw.load_manifest")}

    again = load()
    assert (again.objects, again.events, again.pending_objects) == (0, 0, 0)
    assert loaded_once(query) == (448, 448)


def test_an_object_that_cannot_be_fetched_fails_alone_and_is_loaded_by_the_next_run(
    put, load, query, loader_env, monkeypatch
):
    small_objects(put, 60, 2)
    with FaultProxy(loader_env["AWS_ENDPOINT_URL"]) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        proxy.fail_next("GET", "/req-00007.json", status=503, times=100)
        first = load()
    assert (first.status, first.objects, first.failed_objects, first.events) == ("partial", 59, 1, 118)
    assert first.failures[0]["object_key"] == f"{HOUR_PREFIX}req-00007.json"
    monkeypatch.setenv("AWS_ENDPOINT_URL", loader_env["AWS_ENDPOINT_URL"])
    second = load()
    assert (second.status, second.objects, second.events) == ("succeeded", 1, 2)
    assert loaded_once(query) == (120, 120)


def test_time_budget_stops_taking_objects_and_the_next_run_loads_the_rest_once(put, load, query, monkeypatch):
    monkeypatch.setenv("LOADER_BATCH_OBJECTS", "10")
    monkeypatch.setenv("LOADER_WORKERS", "1")
    small_objects(put, 95, 4)
    first = load(budget=CallsBudget(3))  # three batches, then the budget is spent
    assert (first.status, first.objects, first.objects_left) == ("succeeded", 30, 65)
    assert query("select objects, events, objects_left from raw.load_runs") == [(30, 120, 65)]
    second = load()
    assert (second.objects, second.events, second.objects_left) == (65, 260, 0)
    assert loaded_once(query) == (380, 380)
    assert query("select count(*) from raw.load_manifest") == [(95,)]


def test_max_seconds_on_the_cli_logs_what_is_left_then_builds(put, run_cli, query, tmp_path):
    small_objects(put, 12, 5)
    project = make_dbt_project(tmp_path / "proj", GOOD_MODEL)
    env = dict(dbt_env(tmp_path, project), LOADER_BATCH_OBJECTS="5")
    cut = run_cli("load", "--max-seconds", "0.000001", "--json", *window_args(), env=env)
    assert cut.returncode == 0, cut.stderr
    assert "Stopping early: 12 objects left for the next run" in cut.stderr
    result = json.loads(cut.stdout.strip().splitlines()[-1])
    assert (result["status"], result["objects"], result["objects_left"]) == ("succeeded", 0, 12)
    # it still builds: the marts have never been built
    assert result["dbt_status"] == "success" and result["build_reason"] == "the marts have not been built yet"
    rest = run_cli("load", "--json", *window_args(), env=env)
    assert rest.returncode == 0, rest.stderr
    assert json.loads(rest.stdout.strip().splitlines()[-1])["objects"] == 12
    assert query("select sum(events) from probe.events_per_object") == [(60,)]
    bad = run_cli("load", "--max-seconds", "-3", *window_args())
    assert bad.returncode == 2 and "must be positive" in bad.stderr


def test_lambda_budget_keeps_the_build_margin(put, load, query, monkeypatch):
    from loader.load import Budget

    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return 200_000  # 200 s left, below the 300 s margin kept for dbt build

    small_objects(put, 7, 2)
    cut = load(budget=Budget.lambda_context(Context(), build_margin_seconds=300))
    assert (cut.objects, cut.objects_left) == (0, 7)
    roomy = load(budget=Budget.lambda_context(Context(), build_margin_seconds=60))
    assert (roomy.objects, roomy.objects_left, roomy.events) == (7, 0, 14)
    assert loaded_once(query) == (14, 14)


def test_killed_between_batches_the_run_row_is_exact_and_the_next_run_loads_each_event_once(
    put, query, run_cli, loader_env
):
    small_objects(put, 600, 5)
    done = kill_loader_once(
        query,
        loader_env,
        objects_in_manifest,
        at_least=100,
        LOADER_BATCH_OBJECTS="10",
        LOADER_WORKERS="1",
        LOADER_FETCH_CONCURRENCY="2",
    )
    assert done < 600, "the loader finished before it could be killed"
    manifest, events = query("select count(*), coalesce(sum(events_loaded), 0) from raw.load_manifest")[0]
    assert loaded_once(query) == (events, events) and events == manifest * 5
    # the killed run's row says exactly what it committed
    assert query("select objects, events from raw.load_runs") == [(manifest, events)]

    rerun = run_cli("load", "--no-build", "--json", *window_args())
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout.strip().splitlines()[-1])["objects"] == 600 - manifest
    assert loaded_once(query) == (3000, 3000)
    assert query("select status from raw.load_runs order by started_at") == [("abandoned",), ("succeeded",)]


SLOW_MODEL = (
    "select count(*) as events from {{ ref('events_per_object') }}"
    " cross join lateral (select pg_sleep(60)) as slept\n"
)


def test_build_killed_midway_is_redone_by_a_run_with_nothing_new(put, query, run_cli, loader_env, tmp_path):
    put(HOUR_PREFIX + "a.json", ndjson(0, 9))
    project = make_dbt_project(tmp_path / "proj", GOOD_MODEL)
    # long enough to be killed in, short enough to wait for: a build that outlived the kill
    # would have created the model by the time its sessions end
    (project / "models" / "slow_total.sql").write_text(SLOW_MODEL.replace("pg_sleep(60)", "pg_sleep(8)"))
    env = dict(os.environ)
    env.update(loader_env)
    env.update(dbt_env(tmp_path, project))
    proc = subprocess.Popen(
        cli_command("load", *window_args()),
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(
            "dbt model events_per_object: success" in s for s in seen
        ):
            assert proc.poll() is None, "".join(seen)
            time.sleep(0.05)
        # live progress: the first model's line is out while the build is still running
        assert any("dbt model events_per_object: success" in s for s in seen), "".join(seen)
        assert query("select dbt_status from raw.load_runs") == [("running",)]
        proc.send_signal(signal.SIGKILL)  # what a Lambda timeout does
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not any("dbt build finished" in s for s in seen)
    # the loader's session and its build's (dbt's, aborted once its pg_sleep returns)
    wait_for_loader_sessions_to_end(query, application_names=("clickstream-loader", "dbt"))
    # the killed build never created the slow model (the one before it, it did)
    assert query("select to_regclass('probe.events_per_object') is not null") == [(True,)]
    assert query("select to_regclass('probe.slow_total') is null") == [(True,)]

    (project / "models" / "slow_total.sql").write_text(SLOW_MODEL.replace("pg_sleep(60)", "pg_sleep(0)"))
    again = run_cli("load", "--json", *window_args(), env=dbt_env(tmp_path, project))
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout.strip().splitlines()[-1])
    assert (result["objects"], result["events"]) == (0, 0)
    assert result["dbt_status"] == "success" and result["build_reason"] == "the last build interrupted"
    assert "was interrupted (its process died): building again" in again.stderr
    assert query("select events from probe.slow_total") == [(1,)]
    assert query("select dbt_status from raw.load_runs order by started_at") == [
        ("interrupted",),
        ("success",),
    ]
    # and now the marts hold everything: a run with nothing new skips the build
    idle = run_cli("load", "--json", *window_args(), env=dbt_env(tmp_path, project))
    assert json.loads(idle.stdout.strip().splitlines()[-1])["dbt_status"] == "skipped"
    assert "Nothing new loaded: dbt build skipped" in idle.stderr


def test_a_load_whose_build_never_started_is_built_by_the_next_run(put, run_cli, query, tmp_path):
    project = make_dbt_project(tmp_path / "proj", GOOD_MODEL)
    env = dbt_env(tmp_path, project)
    put(HOUR_PREFIX + "a.json", ndjson(0, 4))
    assert run_cli("load", *window_args(), env=env).returncode == 0
    put(HOUR_PREFIX + "b.json", ndjson(4, 6))
    assert run_cli("load", "--no-build", *window_args(), env=env).returncode == 0  # build never started
    behind = run_cli("status")
    assert "(behind: raw loaded" in behind.stdout, behind.stdout
    again = run_cli("load", "--json", *window_args(), env=env)
    result = json.loads(again.stdout.strip().splitlines()[-1])
    assert result["events"] == 0 and result["dbt_status"] == "success"
    assert result["build_reason"] == "events were loaded since the last build started"
    assert query("select sum(events) from probe.events_per_object") == [(10,)]
    caught_up = run_cli("status", "--json")
    assert json.loads(caught_up.stdout)["marts_behind"] is False


def slow_copies(query, loader_env, seconds: float) -> None:
    """Each batch's COPY made to take ``seconds`` longer (a statement trigger), so a run's loading
    outlasts a second process's start-up on a busy machine."""
    from loader import schema

    conn = psycopg2.connect(
        host=loader_env["PGHOST"],
        port=loader_env["PGPORT"],
        user=loader_env["PGUSER"],
        password=loader_env["PGPASSWORD"],
        dbname=loader_env["PGDATABASE"],
    )
    schema.migrate(conn)
    conn.close()
    query(
        "create function raw.slow_copy() returns trigger language plpgsql as $$ begin"
        f" perform pg_sleep({seconds}); return null; end $$;"
        "create trigger slow_copy after insert on raw.clickstream_events"
        " for each statement execute function raw.slow_copy()"
    )


def two_runs_at_once(put, loader_env, tmp_path) -> list[tuple[dict, str]]:
    """Two ``load`` runs started together over 120 objects (batches of 4; a build of 3 s):
    each run's JSON summary and its log."""
    small_objects(put, 120, 50)
    project = make_dbt_project(tmp_path / "proj", GOOD_MODEL)
    (project / "models" / "slow_total.sql").write_text(SLOW_MODEL.replace("pg_sleep(60)", "pg_sleep(3)"))
    env = dict(os.environ)
    env.update(loader_env)
    env.update(dbt_env(tmp_path, project), LOADER_BATCH_OBJECTS="4")
    procs = [
        subprocess.Popen(
            cli_command("load", "--json", *window_args()),
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    return [(json.loads(out.strip().splitlines()[-1]), err) for out, err in outputs]


def test_two_runs_at_once_overlap_load_each_event_once_and_never_build_together(
    put, query, loader_env, tmp_path
):
    # 30 batches of at least 0.1 s: the first run is still loading when the second has started,
    # however long a busy machine takes to start a process (unslowed, a first run once finished
    # before the second began)
    slow_copies(query, loader_env, 0.1)
    runs_seen = two_runs_at_once(put, loader_env, tmp_path)
    results = [result for result, _ in runs_seen]
    assert sum(r["objects"] for r in results) == 120
    assert loaded_once(query) == (6000, 6000)
    runs = query(
        "select started_at, finished_at, dbt_status, dbt_started_at, dbt_finished_at from raw.load_runs"
        " order by started_at"
    )
    (a_start, a_end, *_), (b_start, b_end, *_) = runs
    assert b_start < a_end and a_start < b_end, "the two runs did not overlap"
    built = [(s, e) for _, _, status, s, e in runs if status == "success"]
    assert built and {r[2] for r in runs} <= {"success", "skipped"}
    if len(built) == 2:  # both built: one after the other, never at once
        (s1, e1), (s2, e2) = sorted(built)
        assert e1 <= s2
    assert any("Another run is building the marts: waiting" in err for _, err in runs_seen), runs_seen[1][1]
    assert query("select sum(events) from probe.events_per_object") == [(6000,)]


def test_two_runs_at_once_split_the_objects(put, query, loader_env, tmp_path):
    """Two runs at once share the work: each loads some of the objects, none twice. Each batch's
    COPY is made to take a quarter of a second (a statement trigger), so the 30 batches last
    long enough for the second run to start while the first is still loading (unslowed, the
    first run's 6,000 events are in before the second has listed the bucket)."""
    slow_copies(query, loader_env, 0.25)
    results = [result for result, _ in two_runs_at_once(put, loader_env, tmp_path)]
    assert loaded_once(query) == (6000, 6000)
    assert sum(r["objects"] for r in results) == 120
    assert all(r["objects"] > 0 for r in results), [(r["objects"], r["busy_objects"]) for r in results]


def objects_in_manifest(query) -> int:
    if not query("select to_regclass('raw.load_manifest') is not null")[0][0]:
        return 0
    return query("select count(*) from raw.load_manifest")[0][0]


def test_the_etl_role_plans_without_jit(loader_env, query):
    """JIT compiled the contract check's expressions for seconds in every statement of a cycle
    that reads raw (the planner cannot size an array of loads): the loader's migration turns JIT
    off for its own role, so dbt's sessions, opened after it, plan without it."""
    from loader import schema
    from loader.db import connect

    query("alter role current_user reset jit")
    try:
        assert query("show jit") == [("on",)]  # the server's default, for the oracle's sake
        conn = connect()
        schema.migrate(conn)
        conn.close()
        # a new session, as dbt's are
        assert query("show jit") == [("off",)]
        assert query("select 'jit=off' = any(rolconfig) from pg_roles where rolname = current_user") == [
            (True,)
        ]
    finally:
        query("alter role current_user set jit = off")
