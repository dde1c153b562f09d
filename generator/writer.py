"""Write events as newline-delimited JSON files, one folder per UTC hour of received_at:
``<out>/events/YYYY/MM/DD/HH/<run>-<YYYYMMDDHH>-<part>.json[.gz]`` in a local folder or an
S3 bucket. Files of an hour are closed (and uploaded) as soon as the stream moves to another
hour, so memory stays flat whatever the run's size."""

from __future__ import annotations

import gzip as gzip_module
import hashlib
import logging
import os
import resource
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

import orjson

log = logging.getLogger(__name__)

LAYOUT_FOLDER = "events"
PART_SIZE = 8 * 1024 * 1024  # S3 multipart part size (minimum is 5 MiB)
WRITE_CHUNK = 256 * 1024
GZIP_LEVEL = 6  # zlib's usual trade-off; 9 (GzipFile's default) is twice as slow for ~3% less


def layout_prefix(prefix: str) -> str:
    """The folder the hour folders go under: the given prefix if it already ends in
    ``events/``, else ``<prefix>events/`` (so ``s3://b/events/`` and ``s3://b/`` both give
    ``events/YYYY/...`` keys, and a local DIR gets DIR/events/YYYY/...)."""
    prefix = prefix.strip("/")
    if prefix.rsplit("/", 1)[-1] == LAYOUT_FOLDER:
        return prefix + "/"
    return f"{prefix}/{LAYOUT_FOLDER}/" if prefix else f"{LAYOUT_FOLDER}/"


def hour_of(event: dict) -> str:
    """'YYYYMMDDHH' of received_at (event_timestamp if missing; UTC 'Z' stamps expected)."""
    stamp = event.get("received_at") or event.get("event_timestamp") or ""
    if len(stamp) >= 13 and stamp[4] == "-" and stamp[13:14] in (":", ""):
        hour = stamp[0:4] + stamp[5:7] + stamp[8:10] + stamp[11:13]
        if hour.isdigit():
            return hour
    return time.strftime("%Y%m%d%H", time.gmtime())


class _File:
    """One output file being written: lines are buffered and flushed in chunks."""

    def __init__(self, sink: _Sink, key: str, compress: bool):
        self.sink = sink
        self.key = key
        self.buffer: list[bytes] = []
        self.buffered = 0
        self.size = 0
        self.lines = 0
        self.raw = sink.open(key)
        # mtime=0 and no file name in the header: same events, same bytes
        self.stream = (
            gzip_module.GzipFile(filename="", mode="wb", fileobj=self.raw, mtime=0, compresslevel=GZIP_LEVEL)
            if compress
            else None
        )

    def write(self, line: bytes) -> None:
        self.buffer.append(line)
        self.buffered += len(line)
        self.lines += 1
        if self.buffered >= WRITE_CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            data = b"".join(self.buffer)
            self.buffer.clear()
            self.size += len(data)
            self.buffered = 0
            (self.stream or self.raw).write(data)

    def close(self) -> None:
        self.flush()
        if self.stream is not None:
            self.stream.close()
        self.sink.close(self.key, self.raw)


class _Sink:
    def open(self, key: str):
        raise NotImplementedError

    def close(self, key: str, raw) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        pass

    def location(self, key: str) -> str:
        raise NotImplementedError


class LocalSink(_Sink):
    """Files in a local folder, written under a hidden temporary name and renamed when
    complete, so a loader scanning the folder never sees half a file."""

    def __init__(self, root: Path):
        self.root = root

    def _tmp(self, path: Path) -> Path:
        return path.with_name(f".{path.name}.tmp")

    def open(self, key: str):
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(self._tmp(path), "wb")

    def close(self, key: str, raw) -> None:
        raw.close()
        path = self.root / key
        os.replace(self._tmp(path), path)

    def location(self, key: str) -> str:
        return str(self.root / key)


class _S3Upload:
    """A file-like object streaming to one S3 object: put_object when small, a multipart
    upload (parts of PART_SIZE, uploaded in the background) when large."""

    def __init__(self, sink: S3Sink, key: str):
        self.sink = sink
        self.key = key
        self.buffer = BytesIO()
        self.upload_id: str | None = None
        self.parts: list[Future] = []

    def write(self, data: bytes) -> int:
        self.buffer.write(data)
        if self.buffer.tell() >= PART_SIZE:
            self._part()
        return len(data)

    def flush(self) -> None:
        pass

    def _part(self) -> None:
        client, bucket = self.sink.client, self.sink.bucket
        if self.upload_id is None:
            self.upload_id = client.create_multipart_upload(
                Bucket=bucket, Key=self.key, ContentType=self.sink.content_type
            )["UploadId"]
        number = len(self.parts) + 1
        body = self.buffer.getvalue()
        self.buffer = BytesIO()
        self.parts.append(self.sink.submit(self._upload_part, number, body))

    def _upload_part(self, number: int, body: bytes) -> dict:
        response = self.sink.client.upload_part(
            Bucket=self.sink.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=body
        )
        return {"PartNumber": number, "ETag": response["ETag"]}

    def finish(self) -> None:
        client, bucket = self.sink.client, self.sink.bucket
        if self.upload_id is None:
            client.put_object(
                Bucket=bucket, Key=self.key, Body=self.buffer.getvalue(), ContentType=self.sink.content_type
            )
            return
        parts = [f.result() for f in self.parts]
        if self.buffer.tell():
            # the last part inline: this runs on an upload thread, which must not wait for a slot
            parts.append(self._upload_part(len(parts) + 1, self.buffer.getvalue()))
        client.complete_multipart_upload(
            Bucket=bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": parts}
        )


class S3Sink(_Sink):
    """Objects in an S3 bucket (boto3 honours AWS_ENDPOINT_URL, e.g. the moto server).
    Closed files upload in a small thread pool; at most ``2 * workers`` uploads are in
    flight, which bounds memory."""

    def __init__(self, bucket: str, client=None, workers: int = 8, compress: bool = False):
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.client = client or boto3.client(
            "s3",
            region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            config=Config(max_pool_connections=workers * 2, retries={"max_attempts": 5, "mode": "standard"}),
        )
        self.content_type = "application/gzip" if compress else "application/x-ndjson"
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3-upload")
        self.slots = threading.BoundedSemaphore(workers * 2)
        self.pending: list[Future] = []

    def submit(self, fn, *args) -> Future:
        self.slots.acquire()
        future = self.pool.submit(fn, *args)
        future.add_done_callback(lambda _f: self.slots.release())
        return future

    def open(self, key: str):
        return _S3Upload(self, key)

    def close(self, key: str, raw) -> None:
        self.pending.append(self.submit(raw.finish))
        if len(self.pending) > 64:
            self._collect(wait_all=False)

    def _collect(self, wait_all: bool) -> None:
        still = []
        for future in self.pending:
            if wait_all or future.done():
                future.result()  # re-raise upload errors here
            else:
                still.append(future)
        self.pending = still

    def finish(self) -> None:
        try:
            self._collect(wait_all=True)
        finally:
            self.pool.shutdown(wait=True)

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def _run_name(first_line: bytes) -> str:
    return "gen-" + hashlib.blake2b(first_line, digest_size=5).hexdigest()


def write_events(
    events: Iterable[dict],
    out: str | Path,
    *,
    files_per_hour: int = 1,
    gzip: bool = False,
    run_name: str | None = None,
    s3_client=None,
    upload_workers: int = 8,
) -> dict:
    """Write ``events`` under ``out`` (``s3://bucket/prefix/`` or a local folder) and return
    a summary: events, files, bytes (uncompressed), by_event_name, seconds, events_per_second,
    peak_rss_mb, first/last hour, out.

    Within an hour, an event goes to part crc32(session_id) % files_per_hour, so a session's
    events of that hour share a file. The run name (part of every file name) defaults to a
    hash of the first event, so the same stream gives the same names and bytes, and two
    different runs never overwrite each other's files."""
    if files_per_hour < 1:
        raise ValueError("files_per_hour must be >= 1")
    started = time.perf_counter()
    out = str(out)
    if out.startswith("s3://"):
        bucket, _, prefix = out[5:].partition("/")
        if not bucket:
            raise ValueError(f"no bucket in {out!r}")
        sink: LocalSink | S3Sink = S3Sink(bucket, s3_client, upload_workers, gzip)
    else:
        root = Path(out)
        if root.name == LAYOUT_FOLDER:  # DIR/events → DIR/events/YYYY/..., not DIR/events/events/
            root = root.parent
        sink, prefix = LocalSink(root), ""
    base = layout_prefix(prefix)
    suffix = ".json.gz" if gzip else ".json"
    dumps = orjson.dumps
    newline = orjson.OPT_APPEND_NEWLINE
    crc32 = zlib.crc32

    by_name: Counter[str] = Counter()
    files: dict[int, _File] = {}
    opened: Counter[str] = Counter()  # per hour, how often its files were opened (reopen → new names)
    current_hour = None
    first_hour = last_hour = None
    count = files_written = total_bytes = 0
    name = run_name
    try:
        for event in events:
            line = dumps(event, option=newline)
            if name is None:
                name = _run_name(line)
            hour = hour_of(event)
            if hour != current_hour:
                for f in files.values():
                    f.close()
                    total_bytes += f.size
                files.clear()
                current_hour = hour
                opened[hour] += 1
                first_hour = first_hour or hour
                last_hour = hour
            part = (
                crc32(str(event.get("session_id", "")).encode()) % files_per_hour if files_per_hour > 1 else 0
            )
            f = files.get(part)
            if f is None:
                reopen = f"-r{opened[hour] - 1}" if opened[hour] > 1 else ""
                key = f"{base}{hour[0:4]}/{hour[4:6]}/{hour[6:8]}/{hour[8:10]}/{name}-{hour}-{part:03d}{reopen}{suffix}"
                f = files[part] = _File(sink, key, gzip)
                files_written += 1
            f.write(line)
            by_name[str(event.get("event_name"))] += 1
            count += 1
        for f in files.values():
            f.close()
            total_bytes += f.size
        files.clear()
    finally:
        sink.finish()
    seconds = time.perf_counter() - started
    summary = {
        "out": out,
        "layout": sink.location(base).rstrip("/") + "/YYYY/MM/DD/HH/",
        "events": count,
        "files": files_written,
        "bytes": total_bytes,
        "first_hour": first_hour,
        "last_hour": last_hour,
        "by_event_name": dict(sorted(by_name.items())),
        "seconds": round(seconds, 3),
        "events_per_second": round(count / seconds) if seconds > 0 else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    log.info("events written", extra={"events": count, "files": files_written, "out": out})
    return summary
