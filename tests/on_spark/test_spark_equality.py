"""The same raw data built on PostgreSQL and on Spark gives the same marts, row for row.

Raw objects are written to a directory laid out like the bucket: the generator's ~100k events
(bots, resent duplicates, invalid and late events) as hourly objects plus the hand-made messy
set (tests/warehouse/test_messy_raw.py: an array line, contract violations, a sign-in that
stitches, a renamed product, an event two days late). A first build before any traffic (issue
22), then two batches with a build with nothing new between them, each batch followed by an
incremental build: PostgreSQL through the loader and dbt build, Spark through
`python -m spark build` (the loader's parser on Spark, dbt on Spark with Iceberg tables). The
Spark marts are then published into a second PostgreSQL database (the serving path, with the
marts' contract types) and compared with the PostgreSQL build's: every mart, every column but
the ones that say when a row was written, money to the cent; PostgreSQL's incremental marts
are also compared with a full refresh over the same raw lines. A last Spark build with nothing
new must change nothing, and the seed's four validation queries must give the same rows on
both engines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from warehouse.conftest import MART_KEYS, hourly_objects
from warehouse.test_messy_raw import first_batch, second_batch
from warehouse.test_validation_queries import QUERIES, psql

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SPARK_PYTHON = PROJECT_ROOT / ".venv-spark" / "bin" / "python"
SINCE, UNTIL = "2026-02-26", "2026-03-08"
MARTS = {**MART_KEYS, "dashboard_settings": "step_order"}
# the incremental marts (dbt_updated_at on every row, rewritten only when a row is)
FINGERPRINTED = sorted(MART_KEYS)
# columns that say when (or by which load) a row was written, not what it holds
WRITE_COLUMNS = {
    "dbt_updated_at",
    "attributes_changed_at",
    "inserted_at",
    "facts_changed_at",
    "loaded_at",
    "load_id",
    "first_loaded_at",
    "last_loaded_at",
    "previous_session_id",
}

# Spark's raw lines read more than once: per object, how many lines and at most how many copies
RAW_LINES_READ_TWICE = (
    "select object_key, count(*), max(copies) from"
    " (select object_key, line_number, count(*) as copies from raw.clickstream_events group by 1, 2"
    " having count(*) > 1) as read_again group by 1 order by 1"
)
# the validation queries cut at LIMIT 10: the column each orders by (view_count, product_views)
ORDERED_BY_COLUMN = {QUERIES[2]: 2, QUERIES[3]: 1}

# the module's fixture builds both warehouses twice, the engines side by side (about 7½ minutes
# on an idle 2-core machine, more when busy): the per-test timeout covers the fixture too
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]


def object_body(lines: list) -> bytes:
    return ("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n").encode()


def run(cmd: list[str], env: dict[str, str], what: str) -> subprocess.CompletedProcess:
    started = time.monotonic()
    result = subprocess.run(cmd, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    print(f"[spark equality] {what}: {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    if result.returncode != 0:
        raise AssertionError(
            f"{what} failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}{jvm_reports(env)}"
        )
    return result


def spark_env(env: dict[str, str], warehouse: Path) -> dict[str, str]:
    if not SPARK_PYTHON.exists():
        pytest.fail(f"{SPARK_PYTHON} is missing: run `make spark-venv spark-jars` (make test does)")
    out = dict(env)
    out["SPARK_WAREHOUSE"] = str(warehouse)
    out["DBT_TARGET_PATH"] = str(warehouse.parent / "dbt-target")
    out["DBT_LOG_PATH"] = str(warehouse.parent / "dbt-logs")
    # short runs on small data: the JIT's C2 compiler took ~45 of a run's ~80 JVM CPU-seconds
    # (measured on a rerun with nothing new); C1 only and the serial GC roughly halve the JVM's
    # CPU, which the other tests running beside these need (scripts/test.sh). Speed flags only:
    # what Spark computes is the same.
    out["JDK_JAVA_OPTIONS"] = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
    # if the JVM dies (an out-of-memory error is fatal to local Spark), its report lands beside
    # the warehouse and a failing run prints it (run): the reason, the thread, the heap
    out["JDK_JAVA_OPTIONS"] += (
        f" -XX:+CrashOnOutOfMemoryError -XX:ErrorFile={warehouse.parent}/hs_err_pid%p.log"
    )
    return out


def jvm_reports(env: dict[str, str]) -> str:
    """The head of every JVM fatal-error report of these runs (see spark_env), or ''."""
    reports = (
        sorted(Path(env["SPARK_WAREHOUSE"]).parent.glob("hs_err_pid*.log"))
        if "SPARK_WAREHOUSE" in env
        else []
    )
    return "".join(
        f"\n--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[:60]) for p in reports
    )


def spark(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return run([str(SPARK_PYTHON), "-m", "spark", *args], env, f"python -m spark {' '.join(args)}")


def spark_killed_after(env: dict[str, str], line: str, *args: str) -> None:
    """Run python -m spark and SIGKILL it (the JVM too) once it has logged ``line``."""
    proc = subprocess.Popen(
        [str(SPARK_PYTHON), "-m", "spark", *args],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    seen = []
    try:
        for text in proc.stderr:
            seen.append(text)
            if line in text:
                os.killpg(proc.pid, signal.SIGKILL)
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert any(line in text for text in seen), "the run ended before the line to kill at:\n" + "".join(
        seen[-30:]
    )


def pg_load(env: dict[str, str], raw: str) -> None:
    """The loader with one worker: its batches commit in listing order, so "the first loaded
    copy" of a resent event (the copies differ in received_at) is the one in the first object
    listed, as on Spark, whose run stamps every object with one loaded_at (ties: object key).
    With parallel workers a later-listed batch may commit first and keep the other copy."""
    run(
        [
            sys.executable,
            "-m",
            "loader",
            "load",
            "--source",
            raw,
            "--since",
            SINCE,
            "--until",
            UNTIL,
            "--no-build",
            "--workers",
            "1",
        ],
        env,
        "loader load",
    )


def snapshot(env: dict[str, str], *, with_write_columns: bool = False) -> dict[str, list[tuple]]:
    from warehouse import rawdata

    result = {}
    for mart, key in MARTS.items():
        columns = [
            name
            for (name,) in rawdata.query(
                env,
                "select column_name from information_schema.columns"
                " where table_schema = 'analytics' and table_name = %s order by ordinal_position",
                (mart,),
            )
            if with_write_columns or name not in WRITE_COLUMNS
        ]
        assert columns, f"analytics.{mart} is missing"
        rows = rawdata.query(env, f"select {', '.join(columns)} from analytics.{mart} order by {key}")  # noqa: S608
        result[mart] = [tuple(_comparable(v) for v in row) for row in rows]
    return result


def _comparable(value):
    """Numbers to the micro-unit (money to the cent and finer), JSON as canonical text;
    everything else as it is."""
    if isinstance(value, Decimal):
        return value.quantize(Decimal("0.000001"))
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict | list):
        return json.dumps(_json_value(value), sort_keys=True)
    return value


def _json_value(value):
    """JSON compared as values: a number as its normalised decimal (PostgreSQL's jsonb keeps
    0.0 and 324.50 as written, Spark's VARIANT may write 0 and 324.5: the same numbers)."""
    if isinstance(value, dict):
        return {key: _json_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_value(item) for item in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(Decimal(repr(value)).normalize())
    return value


@dataclass
class Built:
    """What the module's fixture built and read, for the tests to compare."""

    pg_marts: dict  # the PostgreSQL marts (after a full refresh), by mart
    spark_marts: dict  # the Spark marts, published into PostgreSQL
    pg_incremental: dict  # the PostgreSQL marts as built incrementally, before that refresh
    answers: dict  # the validation queries' rows on Spark
    after_rerun: dict  # each fingerprinted mart's (rows, newest write) on Spark after the rerun
    pg: dict  # the PostgreSQL build's environment
    on_spark: dict  # the environment the Spark marts were published with
    generated: int  # events generated
    raw_reads: dict  # the killed batch's objects, raw lines read twice, the manifest
    spark: dict  # the Spark build's environment, its arguments and put_object (for later builds)
    build_output: str  # what the build with nothing new printed


@pytest.fixture(scope="module")
def both_engines(make_database, dbt, tmp_path_factory, s3_endpoint):
    """Both warehouses built from one raw bucket on the test S3 server: PostgreSQL through the
    loader (boto3), Spark reading s3a:// through hadoop-aws, as in production."""
    import boto3

    from generator import generate_events

    work = tmp_path_factory.mktemp("spark-equality")
    warehouse = work / "warehouse"
    bucket = f"raw-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    client.create_bucket(Bucket=bucket)
    raw_url = f"s3://{bucket}/events/"

    def put_object(key: str, lines: list) -> None:
        client.put_object(Bucket=bucket, Key=key, Body=object_body(lines))

    events = [
        json.loads(json.dumps(e))
        for e in generate_events(
            seed=20261130,
            start="2026-03-02",
            days=3,
            events=100_000,
            bot_share=0.05,
            duplicate_share=0.03,
            invalid_share=0.03,
            late_share=0.03,
        )
    ]
    objects = [
        (f"events/{loaded_at:%Y/%m/%d/%H}/part-{loaded_at:%H%M}.json", lines)
        for loaded_at, lines in hourly_objects(events)
    ]
    messy_1, named = first_batch()
    messy_2, _later = second_batch(named)
    batches = [
        [*objects[:-6], ("events/2026/03/02/10/messy-a.json", messy_1)],
        [*objects[-6:], ("events/2026/03/02/11/messy-b.json", messy_2)],
    ]
    pg, on_spark = make_database(), make_database()
    for env in (pg, on_spark):
        env.update(
            AWS_ENDPOINT_URL=s3_endpoint,
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
            RAW_BUCKET=bucket,
        )
    senv = spark_env(on_spark, warehouse)
    build = ("build", "--raw", raw_url, "--since", SINCE, "--until", UNTIL, "--no-publish")

    def pg_batch(number: int) -> None:
        started = time.monotonic()
        pg_load(pg, raw_url)
        dbt(pg, "build")
        print(
            f"[spark equality] PostgreSQL batch {number}: {time.monotonic() - started:.1f} s", file=sys.stderr
        )

    def pg_fresh_build() -> dict[str, list[tuple]]:
        """The PostgreSQL marts as built incrementally, then rebuilt from scratch (full refresh
        over the same raw lines): the marts must come out the same."""
        incremental = snapshot(pg)
        dbt(pg, "build", "--full-refresh")
        return incremental

    # each batch is built by both engines side by side (the bucket only changes between
    # batches). A new deployment's first build runs before any traffic (issue 22: on Spark it
    # once left fact_events empty for good), and a build with nothing new runs between the
    # batches: the marts must still come out as a fresh build of the same raw lines.
    with ThreadPoolExecutor(max_workers=1) as postgres:
        for number, batch in [(0, []), (1, batches[0]), (1.5, []), (2, batches[1])]:
            for key, lines in batch:
                put_object(key, lines)
            on_pg = postgres.submit(pg_batch, number)
            if number != 2:
                spark(senv, *build, "--skip-tests")  # the data tests run on the second batch's build
            else:
                # killed after committing the batch's events, before the manifest marks its
                # objects read: the next run reads them again, and the marts still count each
                # event once
                spark_killed_after(senv, "recording them in the manifest", *build)
                spark(senv, *build)
            on_pg.result()
        pg_incremental = postgres.submit(pg_fresh_build)
        spark(senv, "publish", "--tables", ",".join(MARTS))
        pg_incremental = pg_incremental.result()
    nothing_new = spark(senv, *build, "--skip-tests")
    # one Spark start for the rest: the four validation queries, then each mart's fingerprint
    # after the rerun (rows, and the newest write: a row rewritten would carry a newer one),
    # then the raw lines read more than once and the manifest's objects
    fingerprints = [
        f"select count(*), coalesce(cast(max(unix_micros(dbt_updated_at)) as string), '') from {mart}"  # noqa: S608
        for mart in FINGERPRINTED
    ]
    raw_checks = [RAW_LINES_READ_TWICE, "select object_key, events_loaded from raw.load_manifest order by 1"]
    output = spark(senv, "sql", "--tsv", *QUERIES, *fingerprints, *raw_checks).stdout
    blocks = [[line.split("\t") for line in block.splitlines() if line] for block in output.split("\x1e")]
    assert len(blocks) == len(QUERIES) + len(fingerprints) + len(raw_checks), output[-2000:]
    answers = dict(zip(QUERIES, blocks[: len(QUERIES)], strict=True))
    after_rerun = dict(
        zip(FINGERPRINTED, blocks[len(QUERIES) : len(QUERIES) + len(fingerprints)], strict=True)
    )
    twice, manifest = blocks[len(QUERIES) + len(fingerprints) :]
    raw_reads = {
        "killed_batch": sorted(key for key, _lines in batches[1]),
        "read_twice": {key: (int(lines), int(copies)) for key, lines, copies in twice},
        "manifest": [(key, int(events)) for key, events in manifest],
    }
    return Built(
        pg_marts=snapshot(pg),
        spark_marts=snapshot(on_spark),
        pg_incremental=pg_incremental,
        answers=answers,
        after_rerun=after_rerun,
        pg=pg,
        on_spark=on_spark,
        generated=len(events),
        raw_reads=raw_reads,
        spark={"env": senv, "build": build, "put_object": put_object},
        build_output=nothing_new.stdout + nothing_new.stderr,
    )


@pytest.mark.parametrize("mart", sorted(MARTS))
def test_every_mart_equal_row_for_row(both_engines, mart):
    expected, actual = both_engines.pg_marts[mart], both_engines.spark_marts[mart]
    assert expected, f"analytics.{mart} is empty on PostgreSQL: nothing compared"
    expected_set, actual_set = set(expected), set(actual)
    missing = [r for r in expected if r not in actual_set]
    extra = [r for r in actual if r not in expected_set]
    assert (len(actual), missing[:3], extra[:3]) == (len(expected), [], [])
    assert actual == expected


@pytest.mark.parametrize("mart", sorted(MARTS))
def test_postgres_incremental_builds_equal_a_fresh_build(both_engines, mart):
    """PostgreSQL's marts after an empty first build, a batch, a build with nothing new and a
    second batch equal a full refresh over the same raw lines (which the Spark marts are
    compared with above)."""
    fresh, incremental = both_engines.pg_marts[mart], both_engines.pg_incremental[mart]
    assert fresh, f"analytics.{mart} is empty: nothing compared"
    assert (len(incremental), incremental[:3]) == (len(fresh), fresh[:3])
    assert incremental == fresh


def test_the_data_is_the_production_shape(both_engines):
    """The comparison covers what it claims: ~100k events, late and messy rows, rejects."""
    pg, generated = both_engines.pg, both_engines.generated
    from warehouse import rawdata

    [(events,)] = rawdata.query(pg, "select count(*) from analytics.fact_events")
    assert generated > 90_000 and events > 70_000  # bots, invalid lines and resent copies left out
    [(rejected,)] = rawdata.query(pg, "select count(*) from analytics.rejected_events")
    assert rejected > 1000  # the generator's invalid share and the messy set's contract violations
    [(sessions_late,)] = rawdata.query(
        pg, "select count(*) from analytics.fact_events where session_id = 's-late'"
    )
    assert sessions_late == 1


def test_a_rerun_with_nothing_new_changes_nothing(both_engines):
    """The published marts are the state before the rerun: same rows, no row rewritten."""
    from warehouse import rawdata

    after_rerun, on_spark = both_engines.after_rerun, both_engines.on_spark
    for mart in FINGERPRINTED:
        [(rows, newest)] = rawdata.query(
            on_spark,
            f"select count(*), coalesce(((extract(epoch from max(dbt_updated_at)) * 1000000)::bigint)::text, '')"  # noqa: S608
            f" from analytics.{mart}",
        )
        assert after_rerun[mart] == [[str(rows), newest]], mart


def test_validation_queries_verbatim_on_spark(both_engines):
    answers, pg = both_engines.answers, both_engines.pg
    for query in QUERIES:
        on_pg = psql(pg, query)
        on_spark = answers[query]
        if "LIMIT 10" in query:
            # ties may be cut at a different row: the counts it orders by must match in order,
            # and each row Spark shows must be a row PostgreSQL has
            column = ORDERED_BY_COLUMN[query]
            assert [r[column] for r in on_spark] == [r[column] for r in on_pg], query
            full = psql(pg, query.replace(" LIMIT 10", ""))
            assert all(row in full for row in on_spark), query
        else:
            assert sorted(on_spark) == sorted(on_pg), query


def test_the_killed_run_had_committed_its_events_but_not_the_manifest(both_engines):
    """The second batch's first Spark run was killed between its events' commit and the
    manifest: the run after it read the batch's objects again, so each of their event lines is
    in Spark's raw table twice (and no other line is), and the manifest holds every object once."""
    raw_reads = both_engines.raw_reads
    manifest = raw_reads["manifest"]
    assert len({key for key, _events in manifest}) == len(manifest), "an object is in the manifest twice"
    batch = set(raw_reads["killed_batch"])
    assert batch <= {key for key, _events in manifest}
    events = {key: n for key, n in manifest if key in batch and n}
    assert events, "the killed batch has no events"
    assert raw_reads["read_twice"] == {key: (n, 2) for key, n in events.items()}


def test_the_build_logs_each_dbt_node_once(both_engines):
    """The loader's line per node (dbt runs --quiet: its own progress lines would repeat each)."""
    output = both_engines.build_output
    assert output.count("dbt model fact_events: success") == 1, output[-3000:]
    assert "OK created" not in output and "model analytics.fact_events" not in output, output[-3000:]


def test_a_build_whose_new_lines_never_reach_fact_events_fails(both_engines):
    """The guard of issue 22 on Spark: fact_events's run record moved a day ahead (a watermark
    past lines it has not seen) leaves a new object's events out of fact_events while every
    model succeeds; the build fails on the guard. Runs after the comparisons were taken (the
    fixture's snapshots), on the Spark warehouse alone (no publish)."""
    from warehouse import rawdata

    on_spark = both_engines.spark
    spark(
        on_spark["env"],
        "sql",
        "insert into intermediate.dbt_incremental_runs values ('fact_events', timestamp'2100-01-01 00:00:00')",
    )
    on_spark["put_object"]("events/2026/03/04/05/guard.json", rawdata.shop_traffic(3, seed=2026))
    result = subprocess.run(
        [str(SPARK_PYTHON), "-m", "spark", *on_spark["build"]],
        env=on_spark["env"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 1, result.stderr[-4000:]
    # the reconciliation with the staged lines (tag full_scan, in every Spark build) fails too
    failed = [line for line in result.stderr.splitlines() if "Spark build failed: dbt build failed:" in line]
    assert failed and "assert_new_raw_lines_reach_fact_events" in failed[0], result.stderr[-4000:]
