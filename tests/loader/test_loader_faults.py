"""Crashes, kills, concurrent runs, flaky S3 and an unreachable database: all of an object
or none of it, and never twice."""

from __future__ import annotations

from loader_testlib import (
    HOUR_PREFIX,
    FaultProxy,
    free_port,
    kill_loader_once,
    ndjson,
    window_args,
)


def events_by_key(query) -> dict[str, int]:
    return dict(query("select object_key, count(*) from raw.clickstream_events group by 1"))


def test_failure_in_the_middle_of_an_object_leaves_none_of_it(put, load, query):
    from loader import schema
    from loader.load import connect

    conn = connect()
    schema.migrate(conn)
    conn.close()
    # a real database error raised by the 500th row of the object, while COPY is streaming it
    query(
        "create function raw.fail_on_boom() returns trigger language plpgsql as $$ begin"
        " if new.payload ? 'boom' then raise exception 'injected failure at line %', new.line_number; end if;"
        " return new; end $$;"
        "create trigger fail_on_boom before insert on raw.clickstream_events"
        " for each row execute function raw.fail_on_boom()"
    )
    put(HOUR_PREFIX + "a.json", ndjson(0, 499) + ndjson(499, 1, boom=True) + ndjson(500, 500))
    put(HOUR_PREFIX + "b.json", ndjson(1000, 100))
    failed = load()
    assert (failed.status, failed.failed_objects, failed.objects, failed.events) == ("partial", 1, 1, 100)
    assert "injected failure at line 500" in failed.failures[0]["error"]
    assert failed.failures[0]["object_key"] == HOUR_PREFIX + "a.json"
    assert events_by_key(query) == {HOUR_PREFIX + "b.json": 100}
    assert query("select object_key from raw.load_manifest") == [(HOUR_PREFIX + "b.json",)]
    assert query("select count(*) from raw.rejected_lines") == [(0,)]
    assert query("select status, failed_objects from raw.load_runs") == [("partial", 1)]

    query("drop trigger fail_on_boom on raw.clickstream_events")
    retried = load()
    assert (retried.status, retried.objects, retried.events) == ("succeeded", 1, 1000)
    assert events_by_key(query) == {HOUR_PREFIX + "a.json": 1000, HOUR_PREFIX + "b.json": 100}
    assert query(
        "select count(distinct line_number) from raw.clickstream_events where object_key like '%a.json'"
    ) == [(1000,)]


def rows_being_copied(query) -> int:
    return query(
        "select coalesce(max(p.tuples_processed), 0) from pg_stat_progress_copy p"
        " join pg_stat_activity a using (pid) where a.datname = current_database()"
        " and a.application_name = 'clickstream-loader'"
    )[0][0]


def test_loader_killed_mid_copy_leaves_nothing_and_the_next_run_loads_once(put, query, run_cli, loader_env):
    n = 300_000
    put(HOUR_PREFIX + "big.json", ndjson(0, n))
    kill_loader_once(query, loader_env, rows_being_copied, at_least=20_000)
    assert query("select count(*) from raw.clickstream_events") == [(0,)]
    assert query("select count(*) from raw.load_manifest") == [(0,)]
    assert query("select status from raw.load_runs") == [("running",)]

    rerun = run_cli("load", "--no-build", *window_args())
    assert rerun.returncode == 0, rerun.stderr
    assert query("select count(*), count(distinct line_number) from raw.clickstream_events") == [(n, n)]
    assert query("select events_loaded from raw.load_manifest") == [(n,)]
    assert query("select status from raw.load_runs order by started_at") == [("abandoned",), ("succeeded",)]


def test_transient_s3_errors_are_retried(put, load, query, loader_env, monkeypatch):
    put(HOUR_PREFIX + "a.json", ndjson(0, 10))
    with FaultProxy(loader_env["AWS_ENDPOINT_URL"]) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        proxy.fail_next("GET", "list-type=2", status=503)
        proxy.fail_next("GET", "/a.json", status=503, times=2)
        summary = load()
    assert (summary.status, summary.events) == ("succeeded", 10)
    assert proxy.count("GET", "/a.json") == 3  # two 503s, then the object
    assert all(f[3] == 0 for f in proxy.failures)  # every injected failure was hit
    assert query("select count(*) from raw.clickstream_events") == [(10,)]


def test_s3_connection_cut_mid_object_resumes_where_it_stopped(put, load, query, loader_env, monkeypatch):
    body = ndjson(0, 20_000)
    put(HOUR_PREFIX + "a.json", body)
    with FaultProxy(loader_env["AWS_ENDPOINT_URL"]) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        proxy.cut_body("/a.json", after=1_500_000)
        summary = load()
    assert (summary.status, summary.events, summary.rejects) == ("succeeded", 20_000, 0)
    assert proxy.count("GET", "/a.json") == 2  # the cut one, then a ranged GET for the rest
    assert query("select count(*), count(distinct line_number) from raw.clickstream_events") == [
        (20_000, 20_000)
    ]


def test_s3_connection_cut_for_good_rolls_the_object_back(put, load, query, loader_env, monkeypatch):
    put(HOUR_PREFIX + "a.json", ndjson(0, 20_000))
    put(HOUR_PREFIX + "b.json", ndjson(20_000, 10))
    with FaultProxy(loader_env["AWS_ENDPOINT_URL"]) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        proxy.cut_body("/a.json", after=100_000, times=10)
        cut = load()
    assert (cut.status, cut.failed_objects, cut.events) == ("partial", 1, 10)
    assert cut.failures[0]["object_key"] == HOUR_PREFIX + "a.json"
    assert events_by_key(query) == {HOUR_PREFIX + "b.json": 10}
    assert query("select status, failed_objects from raw.load_runs") == [("partial", 1)]
    monkeypatch.setenv("AWS_ENDPOINT_URL", loader_env["AWS_ENDPOINT_URL"])
    assert load().events == 20_000
    assert events_by_key(query) == {HOUR_PREFIX + "a.json": 20_000, HOUR_PREFIX + "b.json": 10}


def test_unreachable_database_exits_non_zero_with_a_clear_message(put, run_cli, query, loader_env):
    put(HOUR_PREFIX + "a.json", ndjson(0, 10))
    port = str(free_port())
    result = run_cli("load", "--no-build", *window_args(), env={"PGPORT": port, "PGCONNECT_TIMEOUT": "3"})
    assert result.returncode == 2
    assert f"cannot connect to PostgreSQL at 127.0.0.1:{port}/{loader_env['PGDATABASE']}" in result.stderr
    assert loader_env["PGPASSWORD"] not in result.stderr
    # nothing was recorded anywhere: the real database is untouched
    assert query("select to_regclass('raw.load_manifest')") == [(None,)]
