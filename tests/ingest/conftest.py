"""Fixtures for the ingest tests: API Gateway HTTP API (payload 2.0) request events, the
handler pointed at the test session's moto server with a fresh bucket (direct mode, or firehose
mode with a delivery stream of the test's own on the same moto server), and readers of what
actually landed in that bucket."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from ingest_testlib import LambdaContext, free_port, wait_for_http
from segment_testlib import ROOT, WRITE_KEY


@pytest.fixture
def ingest_env(s3_env, monkeypatch) -> dict[str, str]:
    """os.environ pointed at a fresh bucket on the test moto server, caches of the handler's
    process-wide settings and client cleared (as in a new Lambda execution environment)."""
    from ingest.settings import get_settings

    for name in ("AWS_ENDPOINT_URL", "RAW_BUCKET", "RAW_PREFIX", "REJECTED_PREFIX", "AWS_REGION"):
        monkeypatch.setenv(name, s3_env[name])
    for name in (
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_FIREHOSE",
        "FIREHOSE_STREAM_NAME",
        "INGEST_TIME_BUDGET_SECONDS",
        "INGEST_TIME_MARGIN_SECONDS",
        "INGEST_ATTEMPT_TIMEOUT_SECONDS",
        "INGEST_MAX_ATTEMPTS",
        "INGEST_PII_QUERY_KEYS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", "http://localhost:8080,https://shop.example.com")
    get_settings.cache_clear()
    yield s3_env
    get_settings.cache_clear()


@pytest.fixture
def firehose_stream(ingest_env, monkeypatch) -> Iterator[str]:
    """A Direct PUT delivery stream of the test's own on the test moto server, delivering to the
    test bucket under events/, and the handler switched to it (FIREHOSE_STREAM_NAME). moto writes
    one object per PutRecordBatch call (no buffering) under events/YYYY/MM/DD/HH/."""
    from ingest.settings import get_settings

    name = f"ingest-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "firehose", endpoint_url=ingest_env["AWS_ENDPOINT_URL"], region_name=ingest_env["AWS_REGION"]
    )
    client.create_delivery_stream(
        DeliveryStreamName=name,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose-test",
            "BucketARN": f"arn:aws:s3:::{ingest_env['RAW_BUCKET']}",
            "Prefix": "events/",
            "ErrorOutputPrefix": "rejected/firehose/",
            "BufferingHints": {"IntervalInSeconds": 60, "SizeInMBs": 64},
            "CompressionFormat": "UNCOMPRESSED",
        },
    )
    monkeypatch.setenv("FIREHOSE_STREAM_NAME", name)
    get_settings.cache_clear()
    yield name
    client.delete_delivery_stream(DeliveryStreamName=name)
    get_settings.cache_clear()


@pytest.fixture
def invoke(ingest_env) -> Callable[..., dict[str, Any]]:
    """Call the Lambda handler with an API Gateway v2 event (and optionally a LambdaContext);
    returns the response with its JSON body parsed into response["json"]."""
    from ingest.handler import lambda_handler

    def _invoke(event: dict[str, Any], context: LambdaContext | None = None) -> dict[str, Any]:
        response = lambda_handler(event, context)
        body = response.get("body")
        response["json"] = json.loads(body) if body else None
        return response

    return _invoke


@pytest.fixture
def bucket_objects(ingest_env) -> Callable[[str], dict[str, bytes]]:
    """Reader: every object under a prefix of the test bucket, key -> bytes."""
    client = boto3.client(
        "s3", endpoint_url=ingest_env["AWS_ENDPOINT_URL"], region_name=ingest_env["AWS_REGION"]
    )

    def _read(prefix: str = "") -> dict[str, bytes]:
        objects = {}
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=ingest_env["RAW_BUCKET"], Prefix=prefix):
            for item in page.get("Contents", []):
                body = client.get_object(Bucket=ingest_env["RAW_BUCKET"], Key=item["Key"])["Body"].read()
                objects[item["Key"]] = body
        return objects

    return _read


@pytest.fixture(scope="module")
def segment_server(s3_endpoint, base_env, tmp_path_factory):
    """``python -m ingest serve`` with a bucket of its own and the write key configured; yields
    (base_url, env with the bucket)."""
    bucket = f"raw-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name=base_env["AWS_REGION"]).create_bucket(
        Bucket=bucket
    )
    env = dict(
        base_env,
        AWS_ENDPOINT_URL=s3_endpoint,
        RAW_BUCKET=bucket,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        INGEST_WRITE_KEYS=f"some-other-key-1,{WRITE_KEY}",
    )
    env.pop("INGEST_PORT", None)
    port = free_port()
    log = tmp_path_factory.mktemp("segment-server") / "server.log"
    with log.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ingest", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_http(f"http://127.0.0.1:{port}/healthz")
            yield f"http://127.0.0.1:{port}", env
        finally:
            proc.terminate()
            proc.wait(timeout=10)
