"""Writing NDJSON objects to the raw bucket. One S3 client per process."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config

NDJSON_CONTENT_TYPE = "application/x-ndjson"


@functools.cache
def get_s3_client(endpoint_url: str | None = None, region: str | None = None):
    """The process's S3 client (boto3 clients are thread-safe; created on first use)."""
    config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=15)
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


def object_key(prefix: str, at: datetime) -> str:
    """``<prefix>YYYY/MM/DD/HH/<unique name>.json`` for a write at ``at`` (UTC)."""
    name = f"{at:%Y%m%dT%H%M%S%f}Z-{uuid.uuid4().hex}"
    return f"{prefix}{at:%Y/%m/%d/%H}/{name}.json"


def to_ndjson(records: Iterable[dict[str, Any]]) -> bytes:
    lines = (json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in records)
    return ("\n".join(lines) + "\n").encode("utf-8")


def put_ndjson(s3, bucket: str, key: str, records: list[dict[str, Any]]) -> int:
    """Write the records as one NDJSON object; returns its size in bytes."""
    body = to_ndjson(records)
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=NDJSON_CONTENT_TYPE)
    return len(body)
