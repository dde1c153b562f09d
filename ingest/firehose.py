"""Sending accepted events to an Amazon Data Firehose delivery stream (Direct PUT).

Events are NDJSON lines. Whole lines are packed into records of at most 1,000 KiB (Firehose's
record limit; it bills each record rounded up to 5 KB, so a request's few events make one record,
not one each), and every record ends with a newline, so the objects Firehose writes by
concatenating records are valid NDJSON. Records go out with PutRecordBatch, at most 500 records
and 4 MiB per call; records a call refuses (``FailedPutCount``, a per-record ``ErrorCode``) are
sent again with backoff inside the request's time budget, and only those."""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Iterable

import boto3

from ingest.budget import AttemptTimeouts, Deadline, retry_within
from ingest.settings import Settings
from ingest.storage import client_config, default_timeouts

logger = logging.getLogger("ingest.firehose")

MAX_RECORD_BYTES = 1_000 * 1024
MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 4 * 1024 * 1024


@functools.lru_cache(maxsize=32)
def get_firehose_client(
    endpoint_url: str | None = None,
    region: str | None = None,
    connect_timeout: float = 1.0,
    read_timeout: float = 2.0,
):
    """The process's Firehose client for these timeouts (boto3 clients are thread-safe)."""
    config = client_config(connect_timeout, read_timeout)
    return boto3.client("firehose", endpoint_url=endpoint_url, region_name=region, config=config)


def pack_records(lines: Iterable[bytes], max_record_bytes: int = MAX_RECORD_BYTES) -> list[bytes]:
    """Whole NDJSON lines (each ending with a newline) packed, in order, into as few records of
    at most ``max_record_bytes`` as they fit in."""
    records: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for line in lines:
        if not line.endswith(b"\n"):
            raise ValueError("an NDJSON line must end with a newline")
        if len(line) > max_record_bytes:
            raise ValueError(f"a line of {len(line)} bytes does not fit in a {max_record_bytes}-byte record")
        if size + len(line) > max_record_bytes:
            records.append(b"".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        records.append(b"".join(current))
    return records


def batches(
    records: list[bytes], max_records: int = MAX_BATCH_RECORDS, max_bytes: int = MAX_BATCH_BYTES
) -> list[list[bytes]]:
    """The records in PutRecordBatch calls of at most ``max_records`` records and ``max_bytes``."""
    out: list[list[bytes]] = []
    current: list[bytes] = []
    size = 0
    for record in records:
        if current and (len(current) == max_records or size + len(record) > max_bytes):
            out.append(current)
            current, size = [], 0
        current.append(record)
        size += len(record)
    if current:
        out.append(current)
    return out


class FirehoseWriter:
    """PutRecordBatch to the delivery stream named by FIREHOSE_STREAM_NAME."""

    max_line_bytes = MAX_RECORD_BYTES

    def __init__(self, settings: Settings) -> None:
        if not settings.firehose_stream_name:
            raise ValueError("FirehoseWriter needs FIREHOSE_STREAM_NAME")
        self.settings = settings
        self.stream_name = settings.firehose_stream_name
        # made now (at start-up, not inside the first request's budget)
        self.client(default_timeouts(settings))

    def client(self, timeouts: AttemptTimeouts):
        return get_firehose_client(
            self.settings.firehose_endpoint_url, self.settings.region, timeouts.connect, timeouts.read
        )

    def put_lines(self, lines: list[bytes], deadline: Deadline) -> int:
        """Send NDJSON lines; returns the number of records they made."""
        records = pack_records(lines)
        self.put_records(records, deadline)
        return len(records)

    def put_records(self, records: list[bytes], deadline: Deadline) -> None:
        for batch in batches(records):
            self._put_batch(batch, deadline)

    def _put_batch(self, batch: list[bytes], deadline: Deadline) -> None:
        pending = list(batch)

        def attempt(timeouts: AttemptTimeouts) -> bool:
            nonlocal pending
            response = self.client(timeouts).put_record_batch(
                DeliveryStreamName=self.stream_name, Records=[{"Data": r} for r in pending]
            )
            if not response.get("FailedPutCount"):
                pending = []
                return True
            results = response.get("RequestResponses") or []
            if len(results) == len(pending) and any(r.get("ErrorCode") for r in results):
                refused = [
                    (rec, res) for rec, res in zip(pending, results, strict=True) if res.get("ErrorCode")
                ]
            else:  # an answer that does not say which: send them all again (duplicates are harmless)
                refused = [(rec, {"ErrorCode": "Unknown"}) for rec in pending]
            codes = Counter(res["ErrorCode"] for _, res in refused)
            logger.warning(
                "firehose refused records",
                extra={
                    "stream": self.stream_name,
                    "refused": len(refused),
                    "sent": len(pending),
                    "error_codes": dict(codes),
                },
            )
            pending = [rec for rec, _ in refused]
            return False

        retry_within(deadline, self.settings, attempt, f"firehose put {len(batch)} records")
