"""Erasure (``python -m loader forget``): the person and every id stitched to them leave raw, the
rejects, the bucket's objects (every version) and every staging, intermediate and mart table;
each mart then equals a full rebuild from the raw files without their lines (the oracle: a second
database built by the loader and dbt from the test's own events minus the person's); a later file
with their events loads without them; the erasure list holds keyed hashes only; killed midway the
next run finishes it, run twice it changes nothing; an unknown id says nothing is held."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from datetime import timedelta

import boto3
import pytest
from loader_testlib import PROJECT_ROOT, cli_command, wait_for_loader_sessions_to_end
from warehouse.conftest import MART_KEYS, RUN_COLUMNS

from tests.warehouse import rawdata

T0 = rawdata.BASE_TIME
WINDOW = ["--since", "2026-03-01", "--until", "2026-03-10"]
ANN_IDS = ("user-ann", "anon-ann-phone", "anon-ann-laptop", "s-ann-1", "s-ann-2", "s-ann-3", "o-ann")
SCHEMAS = ("raw", "staging", "intermediate", "analytics")


def ann_events(renames: bool = True) -> list[dict]:
    """Ann on two devices: a guest visit on her phone, then signed in on both, an order, a product
    only she saw, and (``renames``) the latest sighting of p-2, under a new name she alone saw."""
    e = rawdata.event
    p2 = dict(rawdata.PRODUCTS["p-2"], name="Rain Jacket (renamed)", price=99.0) if renames else "p-2"
    return [
        e("page_view", T0, session_id="s-ann-1", anonymous_id="anon-ann-phone", device_type="mobile"),
        e(
            "sign_in",
            T0 + timedelta(minutes=1),
            session_id="s-ann-1",
            anonymous_id="anon-ann-phone",
            user_id="user-ann",
            device_type="mobile",
        ),
        e("page_view", T0 + timedelta(hours=3), session_id="s-ann-2", anonymous_id="anon-ann-laptop"),
        e(
            "product_view",
            T0 + timedelta(hours=3, minutes=1),
            session_id="s-ann-2",
            anonymous_id="anon-ann-laptop",
            product={"id": "p-ann", "name": "Only Ann saw it", "category": "x", "brand": "y", "price": 1.0},
        ),
        e(
            "product_view",
            T0 + timedelta(hours=3, minutes=2),
            session_id="s-ann-2",
            anonymous_id="anon-ann-laptop",
            product=p2,
        ),
        e(
            "sign_in",
            T0 + timedelta(hours=3, minutes=3),
            session_id="s-ann-2",
            anonymous_id="anon-ann-laptop",
            user_id="user-ann",
        ),
        e(
            "add_to_cart",
            T0 + timedelta(hours=3, minutes=4),
            session_id="s-ann-2",
            anonymous_id="anon-ann-laptop",
            user_id="user-ann",
            product="p-1",
            quantity=2,
        ),
        e(
            "purchase",
            T0 + timedelta(hours=3, minutes=5),
            session_id="s-ann-2",
            anonymous_id="anon-ann-laptop",
            user_id="user-ann",
            order=rawdata.order_payload("o-ann", [("p-1", 2)]),
        ),
        # a week later, a second visit (retention) on her phone
        e("page_view", T0 + timedelta(days=7), session_id="s-ann-3", anonymous_id="anon-ann-phone"),
    ]


def others() -> list[dict]:
    e = rawdata.event
    bob = [
        e("page_view", T0, session_id="s-bob", anonymous_id="anon-bob"),
        e(
            "product_view",
            T0 + timedelta(minutes=1),
            session_id="s-bob",
            anonymous_id="anon-bob",
            product="p-2",
        ),
        e(
            "sign_in",
            T0 + timedelta(minutes=2),
            session_id="s-bob",
            anonymous_id="anon-bob",
            user_id="user-bob",
        ),
    ]
    return (
        bob
        + rawdata.shop_traffic(30, seed=41)
        + rawdata.shop_traffic(6, seed=42, start=T0 + timedelta(days=7))
    )


def is_ann(line: str) -> bool:
    return any(f'"{i}"' in line for i in ("user-ann", "anon-ann-phone", "anon-ann-laptop"))


def objects(renames: bool = True) -> dict[str, list[str]]:
    """The raw files: NDJSON lines by key; Ann's lines among everyone's, a line that is not JSON
    and an event breaking the contract, both carrying her id, one gzip object."""
    ann = [json.dumps(p) for p in ann_events(renames)]
    rest = [json.dumps(p) for p in others()]
    broken = '{"user_id": "user-ann", "event_name": "page_view", oops'
    invalid = json.dumps(
        {"event_id": "not-a-uuid", "event_name": "page_view", "anonymous_id": "anon-ann-phone"}
    )
    return {
        "events/2026/03/02/09/a.json": rest[:40] + ann[:2] + [broken],
        "events/2026/03/02/12/b.json": ann[2:8] + rest[40:90] + [invalid],
        "events/2026/03/02/13/c.json.gz": rest[90:140],
        "events/2026/03/02/14/d.json": rest[140:],
        "events/2026/03/09/09/e.json": ann[8:],
    }


def body(key: str, lines: list[str]) -> bytes:
    import gzip

    data = "".join(line + "\n" for line in lines).encode()
    return gzip.compress(data) if key.endswith(".gz") else data


def put_all(s3, bucket: str, files: dict[str, list[str]]) -> None:
    for key, lines in files.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body(key, lines))


@pytest.fixture
def dbt_paths(tmp_path, monkeypatch) -> dict[str, str]:
    paths = {"DBT_TARGET_PATH": str(tmp_path / "target"), "DBT_LOG_PATH": str(tmp_path / "logs")}
    for name, value in paths.items():
        monkeypatch.setenv(name, value)
    return paths


@pytest.fixture
def shop(loader_env, s3, run_cli, dbt_paths):
    return load_shop(objects(), loader_env, s3, run_cli, dbt_paths)


def load_shop(files, loader_env, s3, run_cli, dbt_paths):
    """The files in a versioned bucket, loaded in two runs, each followed by the cycle's build."""
    bucket = loader_env["RAW_BUCKET"]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    keys = list(files)
    for part in (keys[:3], keys[3:]):
        put_all(s3, bucket, {k: files[k] for k in part})
        loaded = run_cli("load", *WINDOW, env=dbt_paths)
        assert loaded.returncode == 0, loaded.stderr[-4000:]
    return files


def oracle(files: dict[str, list[str]], make_database, s3_env, dbt_paths) -> dict:
    """The marts of a second database built from the files without Ann's lines (blank lines in
    their place: the other lines keep their numbers), by the loader and one full dbt build."""
    env = make_database()
    bucket = f"oracle-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"], region_name=s3_env["AWS_REGION"])
    s3.create_bucket(Bucket=bucket)
    put_all(s3, bucket, {k: ["" if is_ann(line) else line for line in lines] for k, lines in files.items()})
    run_env = {**os.environ, **s3_env, **dbt_paths, "PGDATABASE": env["PGDATABASE"], "RAW_BUCKET": bucket}
    run_env["DBT_TARGET_PATH"] += "-oracle"
    loaded = subprocess.run(
        cli_command("load", *WINDOW), cwd=PROJECT_ROOT, env=run_env, capture_output=True, text=True
    )
    assert loaded.returncode == 0, loaded.stderr[-4000:]
    marts = snapshot_marts(env)
    return {
        mart: [tuple(v.replace(bucket, s3_env["RAW_BUCKET"]) if v else v for v in row) for row in rows]
        for mart, rows in marts.items()
    }


def held_anywhere(query, s3, bucket: str, needles=ANN_IDS) -> list[str]:
    """Every text and JSON column of every table and view of raw, staging, intermediate and
    analytics, and every version of every object in the bucket, that holds one of the needles."""
    found = []
    columns = query(
        "select c.table_schema, c.table_name, c.column_name from information_schema.columns as c"
        " where c.table_schema = any(%s) and c.data_type in ('text', 'character varying', 'json', 'jsonb',"
        " 'ARRAY', 'USER-DEFINED')",
        (list(SCHEMAS),),
    )
    for schema, table, column in columns:
        rows = query(
            f'select count(*) from "{schema}"."{table}" where "{column}"::text like any(%s)',  # noqa: S608
            ([f"%{n}%" for n in needles],),
        )
        if rows[0][0]:
            found.append(f"{schema}.{table}.{column}: {rows[0][0]}")
    import gzip

    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            data = s3.get_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])[
                "Body"
            ].read()
            text = (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode()
            for n in needles:
                if n in text:
                    found.append(f"s3://{bucket}/{version['Key']}?versionId={version['VersionId']}: {n}")
    return found


def snapshot_marts(env: dict[str, str]) -> dict[str, list[tuple]]:
    """Every mart's rows sorted by its key, without the columns that say when or by which load
    a row was written (the rebuild loads the same lines at another time)."""
    skip = RUN_COLUMNS | {"loaded_at", "load_id"}
    result = {}
    for mart, key in MART_KEYS.items():
        columns = rawdata.query(
            env,
            "select column_name from information_schema.columns"
            " where table_schema = 'analytics' and table_name = %s order by ordinal_position",
            (mart,),
        )
        select = ", ".join(f"{c}::text" for (c,) in columns if c not in skip)
        result[mart] = rawdata.query(env, f"select {select} from analytics.{mart} order by {key}")  # noqa: S608
    return result


def assert_marts_equal(actual: dict, expected: dict) -> None:
    """Mart by mart, row for row; a difference names the mart and the rows on either side."""
    assert actual.keys() == expected.keys()
    for mart in expected:
        extra = sorted(set(actual[mart]) - set(expected[mart]))[:5]
        missing = sorted(set(expected[mart]) - set(actual[mart]))[:5]
        assert actual[mart] == expected[mart], (
            f"{mart}: only after forget {extra}; only in the rebuild {missing}"
        )


def forget_cli(run_cli, dbt_paths, *args: str):
    return run_cli("forget", *args, env=dbt_paths)


def test_forget_erases_the_person_everywhere_and_the_marts_equal_a_rebuild_without_them(
    shop, run_cli, query, s3, loader_env, dbt_paths, make_database, s3_env, monkeypatch
):
    bucket = loader_env["RAW_BUCKET"]
    assert held_anywhere(query, s3, bucket), "the test's person is in the warehouse before forget"
    before = {k: v for k, v in query("select object_key, events_loaded from raw.load_manifest")}

    started = time.monotonic()
    result = forget_cli(run_cli, dbt_paths, "--anonymous-id", "anon-ann-phone", "--json")
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads(result.stdout)
    assert summary["status"] == "erased" and summary["ids"] == 3, summary
    assert summary["tables"]["raw.clickstream_events"] == 10  # nine events and the invalid one
    assert summary["tables"]["raw.rejected_lines"] == 1
    assert summary["tables"]["analytics.fact_events"] == 9
    assert summary["tables"]["analytics.fact_sessions"] == 3
    assert summary["tables"]["analytics.dim_users"] == 1
    assert summary["tables"]["analytics.rejected_events"] == 1
    assert {o["object_key"]: o["lines_removed"] for o in summary["objects"]} == {
        "events/2026/03/02/09/a.json": 3,
        "events/2026/03/02/12/b.json": 7,
        "events/2026/03/09/09/e.json": 1,
    }
    assert all(o["versions_deleted"] == 1 for o in summary["objects"]), summary["objects"]
    assert "user-ann" not in result.stdout.replace("anon-ann-phone", ""), "the report names no other id"
    print(f"forget took {seconds:.1f}s")

    # nothing of Ann anywhere: tables, views, objects (every version)
    assert held_anywhere(query, s3, bucket) == []
    # the manifest took the rewritten objects' ETags: the next load finds nothing changed
    manifest = dict(query("select object_key, object_etag from raw.load_manifest"))
    for key in shop:
        assert manifest[key] == s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"'), key
    assert dict(query("select object_key, events_loaded from raw.load_manifest")) == before
    again = run_cli("load", *WINDOW, "--json", env=dbt_paths)
    assert again.returncode == 0, again.stderr[-4000:]
    assert json.loads(again.stdout)["etag_changes"] == 0

    # every mart equals a full rebuild from the files without Ann's lines
    expected = oracle(shop, make_database, s3_env, dbt_paths)
    assert_marts_equal(snapshot_marts(loader_env), expected)

    # the erasure list: 32-byte hashes, not the ids
    hashes = query("select id_hash from raw.erased_ids")
    assert len(hashes) == 3 and all(len(bytes(h)) == 32 for (h,) in hashes)
    for (h,) in hashes:
        assert not any(i.encode() in bytes(h) for i in ANN_IDS)

    # run twice: nothing changes, and it says so (the CLI, and the Lambda's payload, whose
    # summary, logged in CloudWatch, names no id)
    twice = forget_cli(run_cli, dbt_paths, "--user-id", "user-ann")
    assert twice.returncode == 0, twice.stderr[-4000:]
    assert twice.stdout.startswith("forget already: nothing held for user_id user-ann")
    assert_marts_equal(snapshot_marts(loader_env), expected)
    from loader import lambda_handler

    monkeypatch.setenv("ERASURE_HASH_KEY", loader_env["ERASURE_HASH_KEY"])
    monkeypatch.setattr(lambda_handler, "_settings", None)
    by_lambda = lambda_handler.handler({"run": "forget", "anonymous_id": "anon-ann-laptop"}, None)
    assert by_lambda["status"] == "already" and by_lambda["erasure_id"] == summary["erasure_id"]
    assert not any(i in json.dumps(by_lambda) for i in ANN_IDS), by_lambda
    assert lambda_handler.run({"run": "forget", "user_id": "nobody"}) == {
        "status": "nothing",
        "message": "nothing held for user_id",
    }
    assert lambda_handler.run({"run": "forget"})["status"] == "failed"

    # a later file with Ann's events (re-sent and new) loads without them, everyone else's with
    late_key = "events/2026/03/03/10/late.json"
    new_ann = rawdata.event(
        "page_view",
        T0 + timedelta(days=1, hours=1),
        session_id="s-ann-9",
        anonymous_id="anon-ann-laptop",
        user_id="user-ann",
    )
    bob = rawdata.event(
        "page_view", T0 + timedelta(days=1, hours=1), session_id="s-bob-2", anonymous_id="anon-bob"
    )
    broken = '{"anonymous_id": "anon-ann-phone", not json'
    lines = [json.dumps(new_ann), *shop["events/2026/03/02/12/b.json"][:3], json.dumps(bob), broken]
    s3.put_object(Bucket=bucket, Key=late_key, Body=body(late_key, lines))
    late = run_cli("load", *WINDOW, "--json", env=dbt_paths)
    assert late.returncode == 0, late.stderr[-4000:]
    assert query("select events_loaded from raw.load_manifest where object_key = %s", (late_key,)) == [(1,)]
    assert query("select count(*) from analytics.fact_events where session_id = 's-bob-2'") == [(1,)]
    ann_ids = ("user-ann", "anon-ann-phone", "anon-ann-laptop", "s-ann-9")
    assert [f for f in held_anywhere(query, s3, bucket, ann_ids) if not f.startswith("s3://")] == []
    # the bucket still has them in the late object, which the load marked: forget again rewrites it
    assert held_anywhere(query, s3, bucket, ann_ids) != []
    third = forget_cli(run_cli, dbt_paths, "--user-id", "user-ann", "--json")
    assert third.returncode == 0, third.stderr[-4000:]
    rewritten = json.loads(third.stdout)
    assert rewritten["status"] == "already"
    assert [(o["object_key"], o["lines_removed"]) for o in rewritten["objects"]] == [(late_key, 5)]
    assert held_anywhere(query, s3, bucket, ann_ids) == []
    assert query("select events_loaded from raw.load_manifest where object_key = %s", (late_key,)) == [(1,)]


def test_forget_killed_midway_then_run_again_is_complete_and_exact(
    shop, run_cli, query, s3, loader_env, dbt_paths, make_database, s3_env, tmp_path
):
    """SIGKILL while the objects are rewritten (after the first one), then again while the
    aggregates are recounted; the third run finishes, and the result is exact."""
    bucket = loader_env["RAW_BUCKET"]
    # many objects of Ann's, so the rewriting takes long enough to be killed in
    extra = {
        f"events/2026/03/02/15/ann-{n:03}.json": [
            json.dumps(
                rawdata.event(
                    "page_view",
                    T0 + timedelta(hours=6, seconds=n),
                    session_id="s-ann-3",
                    anonymous_id="anon-ann-phone",
                )
            ),
            json.dumps(
                rawdata.event(
                    "page_view",
                    T0 + timedelta(hours=6, seconds=n),
                    session_id=f"s-x-{n}",
                    anonymous_id=f"anon-x-{n}",
                )
            ),
        ]
        for n in range(150)
    }
    put_all(s3, bucket, extra)
    loaded = run_cli("load", *WINDOW, env=dbt_paths)
    assert loaded.returncode == 0, loaded.stderr[-4000:]
    files = {**shop, **extra}

    log = tmp_path / "forget.log"

    def kill_when(condition) -> None:
        env = {**os.environ, **loader_env, **dbt_paths}
        with open(log, "w") as err:
            proc = subprocess.Popen(
                cli_command("forget", "--user-id", "user-ann"),
                cwd=PROJECT_ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not condition():
                assert proc.poll() is None, "forget finished before it could be killed"
                time.sleep(0.02)
            assert condition(), "forget never got there"
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        wait_for_loader_sessions_to_end(query, application_names=("clickstream-loader", "dbt"))

    def objects_done() -> int:
        rows = query("select count(*) filter (where status = 'done') from raw.erasure_objects")
        return rows[0][0] if rows else 0

    kill_when(lambda: objects_done() >= 1)
    assert 1 <= objects_done() < 153, "killed among the objects"
    assert query("select status from raw.erasure_requests") == [("removed",)]
    assert [f for f in held_anywhere(query, s3, bucket) if not f.startswith("s3://")] == []

    # after the first recounted model's line, before the last
    kill_when(lambda: "dbt model " in log.read_text())
    assert "dbt build finished" not in log.read_text()
    assert query("select status from raw.erasure_requests") == [("objects",)]
    # the models whose rebuild committed are recorded, and the next run leaves them out: a recount
    # longer than one Lambda invocation still gets done
    [(recounted,)] = query("select report -> 'recounted' from raw.erasure_requests")
    logged = re.findall(r"dbt model (\w+): success", log.read_text())
    assert recounted and set(recounted) <= set(logged), (recounted, logged)

    result = forget_cli(run_cli, dbt_paths, "--user-id", "user-ann", "--json")
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads(result.stdout)
    assert summary["status"] == "erased", summary
    assert summary["models_recounted_before"] == recounted
    rebuilt_now = re.findall(r"dbt model (\w+): success", result.stderr)
    assert rebuilt_now and not set(recounted) & set(rebuilt_now), (recounted, rebuilt_now)
    assert len(summary["objects"]) == 153 and sum(o["lines_removed"] for o in summary["objects"]) == 161
    assert query("select status from raw.erasure_requests") == [("done",)]
    assert held_anywhere(query, s3, bucket) == []
    assert_marts_equal(snapshot_marts(loader_env), oracle(files, make_database, s3_env, dbt_paths))


def test_forget_after_raw_was_trimmed_rewrites_the_trimmed_loads_objects(
    loader_env, s3, run_cli, query, dbt_paths, make_database, s3_env
):
    """Raw as a landing table: a passed check trimmed every load, so the person's lines are only
    in the bucket and the marts. Forget finds their objects through raw.trimmed_objects, and the
    marts still equal a rebuild without them (here Ann is nobody's latest sighting of a product:
    under trim a product's attributes stay, docs/privacy.md)."""
    from dataclasses import replace

    from loader.check import run_full_check
    from loader.settings import Settings

    files = load_shop(objects(renames=False), loader_env, s3, run_cli, dbt_paths)
    checked = run_full_check(replace(Settings.from_env(), raw_table_retention_days=0.00001))
    assert checked.status == "passed" and checked.trim["status"] == "trimmed", checked
    assert query("select count(*) from raw.clickstream_events") == [(0,)]

    result = forget_cli(run_cli, dbt_paths, "--user-id", "user-ann", "--json")
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads(result.stdout)
    assert (
        summary["tables"]["raw.clickstream_events"] == 0 and summary["tables"]["analytics.fact_events"] == 9
    )
    assert {o["object_key"]: o["lines_removed"] for o in summary["objects"]} == {
        "events/2026/03/02/09/a.json": 3,
        "events/2026/03/02/12/b.json": 7,
        "events/2026/03/09/09/e.json": 1,
        "events/2026/03/02/14/d.json": 0,  # read (a load of hers), not written: one version
    }
    versions = s3.list_object_versions(Bucket=loader_env["RAW_BUCKET"], Prefix="events/2026/03/02/14/d.json")
    assert len(versions["Versions"]) == 1
    assert held_anywhere(query, s3, loader_env["RAW_BUCKET"]) == []
    assert_marts_equal(snapshot_marts(loader_env), oracle(files, make_database, s3_env, dbt_paths))


def test_an_unknown_id_says_nothing_is_held(shop, run_cli, query, dbt_paths):
    before = query("select count(*) from raw.clickstream_events")
    result = forget_cli(run_cli, dbt_paths, "--user-id", "nobody")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "nothing held for user_id nobody"
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert query("select count(*) from raw.clickstream_events") == before
    assert query("select count(*) from raw.erased_ids") == [(0,)]


def test_without_the_key_forget_refuses_and_names_it(run_cli, dbt_paths):
    result = forget_cli(run_cli, {**dbt_paths, "ERASURE_HASH_KEY": ""}, "--user-id", "user-ann")
    assert result.returncode == 2
    assert "ERASURE_HASH_KEY" in result.stderr and "Traceback" not in result.stderr


def test_another_users_order_on_the_persons_device_goes_with_it(
    loader_env, s3, run_cli, query, dbt_paths, make_database, s3_env
):
    """Carl signs in on Ann's phone and buys: his events carry her anonymous id, so forgetting Ann
    removes them too, and everything derived from them (his order's items, his sessions, his
    dim_users row) must go as a rebuild without those lines has it (found at a shop's size: the
    order items of such sessions were left behind, and the daily check's relationships test
    failed)."""
    e = rawdata.event
    at = T0 + timedelta(days=2)
    carl = [
        e("page_view", at, session_id="s-carl", anonymous_id="anon-ann-phone"),
        e(
            "sign_in",
            at + timedelta(minutes=1),
            session_id="s-carl",
            anonymous_id="anon-ann-phone",
            user_id="user-carl",
        ),
        e(
            "add_to_cart",
            at + timedelta(minutes=2),
            session_id="s-carl",
            anonymous_id="anon-ann-phone",
            user_id="user-carl",
            product="p-1",
            quantity=1,
        ),
        e(
            "purchase",
            at + timedelta(minutes=3),
            session_id="s-carl",
            anonymous_id="anon-ann-phone",
            user_id="user-carl",
            order=rawdata.order_payload("o-carl", [("p-1", 1)]),
        ),
    ]
    files = objects()
    files["events/2026/03/04/09/f.json"] = [json.dumps(p) for p in carl]
    files = load_shop(files, loader_env, s3, run_cli, dbt_paths)
    assert query("select count(*) from analytics.fact_order_items where order_id = 'o-carl'") == [(1,)]

    result = forget_cli(run_cli, dbt_paths, "--user-id", "user-ann", "--json")
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads(result.stdout)
    assert summary["status"] == "erased" and summary["rebuild"] == "derived", summary
    assert query("select count(*) from analytics.fact_order_items where order_id = 'o-carl'") == [(0,)]
    assert held_anywhere(query, s3, loader_env["RAW_BUCKET"]) == []
    assert_marts_equal(snapshot_marts(loader_env), oracle(files, make_database, s3_env, dbt_paths))


def ingest(loader_env, monkeypatch, s3, path: str, body, headers: dict | None = None) -> str:
    """One request through the ingest endpoint's own handler (in this process), writing into the
    test's bucket as it does in production; the key of the object of what it refused
    (rejected/...)."""
    from ingest.handler import lambda_handler
    from ingest.settings import get_settings
    from tests.ingest.ingest_testlib import api_gateway_event

    monkeypatch.setenv("REJECTED_PREFIX", "rejected/")
    monkeypatch.setenv("INGEST_WRITE_KEYS", "wk-forget-test")
    monkeypatch.delenv("FIREHOSE_STREAM_NAME", raising=False)
    get_settings.cache_clear()
    before = set(rejected_keys(s3, loader_env["RAW_BUCKET"]))
    response = lambda_handler(api_gateway_event(body, path=path, headers=headers), None)
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"])["rejected"] >= 1, response
    [key] = set(rejected_keys(s3, loader_env["RAW_BUCKET"])) - before
    return key


def rejected_keys(s3, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="rejected/").get("Contents", []))


def text_of(s3, bucket: str, key: str) -> str:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def test_forget_rewrites_the_ingest_endpoints_rejected_objects(
    shop, run_cli, query, s3, loader_env, dbt_paths, monkeypatch
):
    """The events the ingest endpoint refused (its rejected/ prefix, which the loader never reads)
    leave the bucket too: the person's records, found by any of their ids at any depth (our
    contract's, a Segment message's, a Firehose error record's base64 data), go from the objects
    that hold them; the others' records stay, and an object with none of theirs is not written."""
    import base64

    bucket = loader_env["RAW_BUCKET"]
    bad = {"event_name": "Not Snake Case", "event_timestamp": "2026-03-02T09:00:00Z"}

    def refused(anonymous_id: str, session_id: str) -> dict:
        return {**bad, "event_id": str(uuid.uuid4()), "anonymous_id": anonymous_id, "session_id": session_id}

    mixed = ingest(
        loader_env,
        monkeypatch,
        s3,
        "/events",
        {"events": [refused("anon-ann-laptop", "s-ann-2"), refused("anon-bob", "s-bob")]},
    )
    auth = {"authorization": "Basic " + base64.b64encode(b"wk-forget-test:").decode()}
    segment = {
        "type": "track",
        "event": "Order Completed",  # no order_id: refused
        "messageId": str(uuid.uuid4()),
        "userId": "user-ann",
        "timestamp": "2026-03-02T12:00:00.000Z",
        "properties": {"revenue": 5},
    }
    anns = ingest(loader_env, monkeypatch, s3, "/v1/batch", {"batch": [segment]}, headers=auth)
    bobs = ingest(loader_env, monkeypatch, s3, "/events", {"events": [refused("anon-bob", "s-bob")]})

    # records Firehose could not deliver, in its error output's format
    def firehose_record(line: dict) -> str:
        data = base64.b64encode(json.dumps(line).encode() + b"\n").decode()
        return json.dumps({"attemptsMade": 1, "errorCode": "S3.AccessDenied", "rawData": data})

    firehose = "rejected/firehose/s3-failed/2026/03/02/12/stream-1-2026-03-02-12-00-00-x"
    bob_line = others()[0]
    lines = [firehose_record(ann_events()[2]), firehose_record(bob_line)]
    s3.put_object(Bucket=bucket, Key=firehose, Body="\n".join(lines).encode() + b"\n")
    assert rejected_keys(s3, bucket) == sorted([mixed, anns, bobs, firehose])
    assert "user-ann" in text_of(s3, bucket, anns) and "anon-ann-laptop" in text_of(s3, bucket, mixed)
    bobs_etag = s3.head_object(Bucket=bucket, Key=bobs)["ETag"]

    result = forget_cli(run_cli, dbt_paths, "--user-id", "user-ann", "--json")
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads(result.stdout)
    assert summary["status"] == "erased", summary
    assert summary["rejected_scanned"] == 4
    rewritten = {
        o["object_key"]: o["lines_removed"]
        for o in summary["objects"]
        if o["object_key"].startswith("rejected/")
    }
    assert rewritten == {mixed: 1, anns: 1, firehose: 1}, summary["objects"]
    assert all(o["versions_deleted"] == 1 for o in summary["objects"]), summary["objects"]
    assert held_anywhere(query, s3, bucket) == []
    # the others' records are still there, in their places; Bob's own object was not written
    assert [
        json.loads(line)["event"]["anonymous_id"] for line in text_of(s3, bucket, mixed).splitlines() if line
    ] == ["anon-bob"]
    assert text_of(s3, bucket, mixed).startswith("\n"), "Ann's record is blanked, Bob's keeps its line"
    assert text_of(s3, bucket, anns).strip() == ""
    [kept] = [line for line in text_of(s3, bucket, firehose).splitlines() if line]
    assert json.loads(base64.b64decode(json.loads(kept)["rawData"])) == bob_line
    assert s3.head_object(Bucket=bucket, Key=bobs)["ETag"] == bobs_etag

    # refused again after the erasure: the next forget (already) reads what came since, and clears it
    late = ingest(loader_env, monkeypatch, s3, "/events", {"events": [refused("anon-ann-phone", "s-9")]})
    assert held_anywhere(query, s3, bucket) != []
    again = forget_cli(run_cli, dbt_paths, "--anonymous-id", "anon-ann-phone", "--json")
    assert again.returncode == 0, again.stderr[-4000:]
    after = json.loads(again.stdout)
    assert after["status"] == "already", after
    assert [(o["object_key"], o["lines_removed"]) for o in after["objects"]] == [(late, 1)]
    assert held_anywhere(query, s3, bucket) == []
    # the next scan starts before the newest object it read (the margin), not at the first scan
    [(scanned_from,)] = query(
        "select (report ->> 'rejected_scanned_from')::timestamptz from raw.erasure_requests"
    )
    assert scanned_from <= s3.head_object(Bucket=bucket, Key=late)["LastModified"]

    # nobody runs forget again: the daily check finishes what came since, a re-sent event's object
    # (dropped at load, marked) and a refusal alike
    resent_key = "events/2026/03/04/10/resent.json"
    resent = [json.dumps(ann_events()[0]), json.dumps(others()[1])]
    s3.put_object(Bucket=bucket, Key=resent_key, Body=body(resent_key, resent))
    loaded = run_cli("load", *WINDOW, env=dbt_paths)
    assert loaded.returncode == 0, loaded.stderr[-4000:]
    refusal = ingest(loader_env, monkeypatch, s3, "/events", {"events": [refused("anon-ann-laptop", "s-10")]})
    assert {f.split("?")[0] for f in held_anywhere(query, s3, bucket)} == {
        f"s3://{bucket}/{resent_key}",
        f"s3://{bucket}/{refusal}",
    }
    checked = run_cli("check", "--json", env=dbt_paths)
    assert checked.returncode == 0, checked.stderr[-4000:]
    upkeep = json.loads(checked.stdout)["erasures"]
    assert upkeep["status"] == "done" and upkeep["objects_rewritten"] == 2 and upkeep["lines_removed"] == 2, (
        upkeep
    )
    assert held_anywhere(query, s3, bucket) == []
    assert query("select count(*) from raw.erasure_objects where status = 'pending'") == [(0,)]
