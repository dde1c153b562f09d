"""Shared by the Segment / RudderStack client tests (the server is conftest's ``segment_server``):
the bucket's records, and the loader plus ``dbt build`` over what landed."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import boto3
import psycopg2
from ingest_testlib import ndjson_records

ROOT = Path(__file__).resolve().parents[2]
WRITE_KEY = "wk-sdk-test-5b1e0c2d"


def bucket_records(env: dict[str, str], prefix: str) -> list[dict]:
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_REGION"])
    objects = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=env["RAW_BUCKET"], Prefix=prefix):
        for item in page.get("Contents", []):
            objects[item["Key"]] = s3.get_object(Bucket=env["RAW_BUCKET"], Key=item["Key"])["Body"].read()
    return ndjson_records(objects)


def load_and_build(env: dict[str, str], make_database, dbt, since: datetime) -> dict[str, str]:
    """A fresh warehouse with the bucket's events loaded (python -m loader load) and built."""
    db = dict(make_database())
    for name in (
        "AWS_ENDPOINT_URL",
        "RAW_BUCKET",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
    ):
        db[name] = env[name]
    since_day = since.date().isoformat()
    load = subprocess.run(
        [
            sys.executable,
            "-m",
            "loader",
            "load",
            "--source",
            f"s3://{env['RAW_BUCKET']}/events/",
            "--since",
            since_day,
            "--no-build",
        ],
        cwd=ROOT,
        env=db,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert load.returncode == 0, load.stdout[-3000:] + load.stderr[-3000:]
    dbt(db, "build")
    return db


def strict_json_lines(body: bytes) -> list:
    """NDJSON as the loader and any other reader takes it: UTF-8 lines split on newlines only, no
    NaN or Infinity."""

    def refuse(name):
        raise AssertionError(f"{name} written into a stored object")

    return [json.loads(line.decode("utf-8"), parse_constant=refuse) for line in body.split(b"\n") if line]


def warehouse_connection(env: dict[str, str]):
    conn = psycopg2.connect(
        host=env["PGHOST"],
        port=env["PGPORT"],
        user=env["PGUSER"],
        password=env["PGPASSWORD"],
        dbname=env["PGDATABASE"],
    )
    conn.autocommit = True
    return conn


def dashboard_queries():
    """The dashboards' query module (shiny/queries), as the app imports it."""
    sys.path.insert(0, str(ROOT / "shiny"))
    try:
        import queries
    finally:
        sys.path.remove(str(ROOT / "shiny"))
    return queries
