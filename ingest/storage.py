"""Writing NDJSON objects to the raw bucket, each attempt inside the request's time budget.

Clients are made once per process for each pair of per-attempt timeouts (normally one pair;
smaller ones only when a request is close to its deadline). botocore's own retries are off:
``ingest.budget.retry_within`` retries, so the retries never outlast the budget."""

from __future__ import annotations

import functools
import json
import math
import re
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config

from ingest.budget import CONNECT_TIMEOUT_SECONDS, AttemptTimeouts, Deadline, retry_within
from ingest.settings import Settings

NDJSON_CONTENT_TYPE = "application/x-ndjson"
_SURROGATE = re.compile("[\ud800-\udfff]")


def client_config(connect_timeout: float, read_timeout: float) -> Config:
    """One attempt per call, bounded: the caller decides whether another one fits."""
    return Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )


def default_timeouts(settings: Settings) -> AttemptTimeouts:
    """The timeouts of an attempt with plenty of time left."""
    return AttemptTimeouts(connect=CONNECT_TIMEOUT_SECONDS, read=settings.attempt_timeout_seconds)


@functools.lru_cache(maxsize=32)
def get_s3_client(
    endpoint_url: str | None = None,
    region: str | None = None,
    connect_timeout: float = 1.0,
    read_timeout: float = 2.0,
):
    """The process's S3 client for these timeouts (boto3 clients are thread-safe)."""
    config = client_config(connect_timeout, read_timeout)
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


def object_key(prefix: str, at: datetime) -> str:
    """``<prefix>YYYY/MM/DD/HH/<unique name>.json`` for a write at ``at`` (UTC)."""
    name = f"{at:%Y%m%dT%H%M%S%f}Z-{uuid.uuid4().hex}"
    return f"{prefix}{at:%Y/%m/%d/%H}/{name}.json"


def ndjson_line(record: dict[str, Any]) -> bytes:
    """One record as one NDJSON line, newline included."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def storable_copy(value: Any) -> Any:
    """A refused event as it can be kept in valid JSON: a number that is not finite becomes its
    text ("Infinity"), a lone surrogate the replacement character. Iterative (any depth)."""

    def scalar(item: Any) -> Any:
        if isinstance(item, float) and not math.isfinite(item):
            return json.dumps(item)
        if isinstance(item, str):
            return _SURROGATE.sub("\ufffd", item)
        return item

    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(root, 0, value)]
    while stack:
        parent, slot, item = stack.pop()
        if isinstance(item, dict):
            copy: Any = {}
            for key, child in item.items():
                stack.append((copy, scalar(key), child))
        elif isinstance(item, list):
            copy = [None] * len(item)
            stack.extend((copy, i, child) for i, child in enumerate(item))
        else:
            copy = scalar(item)
        parent[slot] = copy
    return root[0]


def to_ndjson(records: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(ndjson_line(r) for r in records)


class S3Writer:
    """PutObject of whole NDJSON objects: an object is either written complete or not at all,
    and a retry writes the same key with the same body."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # made now (at start-up, not inside the first request's budget)
        self.client(default_timeouts(settings))

    def client(self, timeouts: AttemptTimeouts):
        return get_s3_client(
            self.settings.s3_endpoint_url, self.settings.region, timeouts.connect, timeouts.read
        )

    def put_ndjson(self, key: str, records: list[dict[str, Any]], deadline: Deadline) -> int:
        """Write the records as one NDJSON object; returns its size in bytes."""
        body = to_ndjson(records)

        def attempt(timeouts: AttemptTimeouts) -> bool:
            self.client(timeouts).put_object(
                Bucket=self.settings.raw_bucket, Key=key, Body=body, ContentType=NDJSON_CONTENT_TYPE
            )
            return True

        retry_within(deadline, self.settings, attempt, f"s3 put {key}")
        return len(body)
