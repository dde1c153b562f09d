"""Where raw event files come from: the S3 raw bucket, or a local directory laid out like it.

Objects live under hour prefixes ``<prefix>YYYY/MM/DD/HH/``; discovery lists those
prefixes over a time window."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from loader.formats import Readable

log = logging.getLogger("loader")

EVENT_SUFFIXES = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz", ".gz")


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    etag: str
    size: int
    last_modified: datetime | None


class ObjectChanged(Exception):
    """The object no longer has the ETag it was listed with."""


class Source(Protocol):
    bucket: str
    prefix: str
    max_fetch_concurrency: int

    def describe(self) -> str: ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]: ...

    def open(self, obj: ObjectInfo) -> Readable: ...

    def fetch(self, obj: ObjectInfo) -> bytes: ...


def is_event_file(key: str) -> bool:
    return key.lower().endswith(EVENT_SUFFIXES)


def hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def window_prefixes(prefix: str, since: datetime, until: datetime) -> list[str]:
    """The listing prefixes covering [since, until]: one per hour, or one per whole day
    (and hours for the partial days at either end) when the window is long."""
    start, end = hour_floor(since), hour_floor(until)
    hours: list[datetime] = []
    t = start
    while t <= end:
        hours.append(t)
        t += timedelta(hours=1)
    if len(hours) <= 72:
        return [f"{prefix}{h:%Y/%m/%d/%H}/" for h in hours]
    out: list[str] = []
    i = 0
    while i < len(hours):
        h = hours[i]
        if h.hour == 0 and i + 23 < len(hours):
            out.append(f"{prefix}{h:%Y/%m/%d}/")
            i += 24
        else:
            out.append(f"{prefix}{h:%Y/%m/%d/%H}/")
            i += 1
    return out


def normalise_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


class S3Source:
    """Objects in an S3 bucket; reads stream, and only the version (ETag) that was listed."""

    max_fetch_concurrency = 1024

    def __init__(self, bucket: str, prefix: str, client) -> None:
        self.bucket = bucket
        self.prefix = normalise_prefix(prefix)
        self.client = client

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield ObjectInfo(
                    key=item["Key"],
                    etag=item["ETag"].strip('"'),
                    size=int(item["Size"]),
                    last_modified=item.get("LastModified"),
                )

    def open(self, obj: ObjectInfo) -> Readable:
        return _ResumableBody(self, obj)

    def fetch(self, obj: ObjectInfo) -> bytes:
        """The whole object (a small one), read as ``open`` reads: pinned to the listed ETag,
        resumed with a ranged GET if the connection drops."""
        body = _ResumableBody(self, obj)
        try:
            parts = []
            while chunk := body.read(1 << 20):
                parts.append(chunk)
            return b"".join(parts)
        finally:
            body.close()

    def get(self, obj: ObjectInfo, start: int = 0):
        """GET the listed version of the object (If-Match its ETag), from byte ``start`` on."""
        from botocore.exceptions import ClientError

        kwargs = {"Bucket": self.bucket, "Key": obj.key, "IfMatch": f'"{obj.etag}"'}
        if start:
            kwargs["Range"] = f"bytes={start}-"
        try:
            return self.client.get_object(**kwargs)["Body"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "412"):
                raise ObjectChanged(f"{obj.key} changed since it was listed") from exc
            raise


class _ResumableBody:
    """A streaming object body that survives a dropped connection: botocore retries the
    request, not a body cut half-way, so a failed read resumes with a ranged GET from the
    last byte received (still pinned to the listed ETag)."""

    MAX_RESUMES = 3

    def __init__(self, source: S3Source, obj: ObjectInfo) -> None:
        self.source = source
        self.obj = obj
        self.position = 0
        self.resumes = 0
        self.body = source.get(obj)

    def read(self, size: int = -1) -> bytes:
        from botocore.exceptions import BotoCoreError
        from urllib3.exceptions import HTTPError

        while True:
            try:
                data = self.body.read(None if size < 0 else size)
                self.position += len(data)
                return data
            except (BotoCoreError, HTTPError, OSError) as exc:
                if self.resumes >= self.MAX_RESUMES:
                    raise
                self.resumes += 1
                log.warning(
                    "Reading %s failed at byte %d (%s); resuming (%d/%d)",
                    self.obj.key,
                    self.position,
                    type(exc).__name__,
                    self.resumes,
                    self.MAX_RESUMES,
                    extra={"object_key": self.obj.key, "position": self.position},
                )
                self.body.close()
                self.body = self.source.get(self.obj, self.position)

    def close(self) -> None:
        self.body.close()


class LocalSource:
    """A local directory laid out like the bucket (``DIR/events/YYYY/MM/DD/HH/*.json``).
    The ETag is the MD5 of the content, as S3 computes it for single-part uploads."""

    max_fetch_concurrency = 4
    """Reading local files gains nothing from more threads (they only contend for the GIL)."""

    def __init__(self, root: str | Path, prefix: str) -> None:
        self.root = Path(root).resolve()
        prefix = normalise_prefix(prefix)
        # a directory that is itself the prefix (DIR/YYYY/...) works too
        if prefix and not (self.root / prefix).is_dir():
            prefix = ""
        self.bucket = str(self.root)
        self.prefix = prefix

    def describe(self) -> str:
        return f"{self.root}/{self.prefix}"

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self.root / prefix
        if not base.is_dir():
            return
        root = str(self.root) + os.sep
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)  # plain strings: thousands of small files
                stat = os.stat(path)
                yield ObjectInfo(
                    key=path[len(root) :].replace(os.sep, "/"),
                    etag=_md5(path),
                    size=stat.st_size,
                    last_modified=datetime.fromtimestamp(stat.st_mtime, UTC),
                )

    def open(self, obj: ObjectInfo) -> Readable:
        return open(self.root / obj.key, "rb")  # noqa: SIM115 - closed by the loader

    def fetch(self, obj: ObjectInfo) -> bytes:
        with open(os.path.join(self.bucket, obj.key), "rb") as f:  # plain strings: many small files
            return f.read()


def _md5(path: str | Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def make_s3_client(max_attempts: int = 5, max_connections: int = 10):
    """One S3 client per process, shared by every fetching thread (``max_connections`` pooled
    connections), with botocore's standard retry mode (503, throttling, connection errors are
    retried with backoff). Responses are not checksummed a second time: the loader checks the
    content itself, and the per-request CPU matters with thousands of small objects."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": max_attempts, "mode": "standard"},
        connect_timeout=10,
        read_timeout=120,
        max_pool_connections=max_connections,
        response_checksum_validation="when_required",
    )
    return boto3.client("s3", region_name=os.environ.get("AWS_REGION"), config=config)


def parse_source(spec: str, default_prefix: str, client_factory) -> Source:
    """``s3://bucket/prefix`` or a local directory."""
    if spec.startswith("s3://"):
        rest = spec[len("s3://") :]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise ValueError(f"no bucket in source {spec!r}")
        return S3Source(bucket, prefix if prefix else default_prefix, client_factory())
    path = Path(spec)
    if not path.is_dir():
        raise ValueError(f"source {spec!r} is neither s3://bucket/prefix nor an existing directory")
    return LocalSource(path, default_prefix)
