"""Raw JSON objects into the Spark warehouse's raw tables, read where they lie.

The same rules as the PostgreSQL loader (loader/): objects are listed over the same window of
hour prefixes (``--since``/``--until``, default the last LOADER_LOOKBACK_HOURS), an object in
the manifest is not read again (one whose ETag changed since is counted and warned about, as
the loader does), and every object is parsed by the loader's own parser (loader.formats:
NDJSON, JSON arrays, pretty-printed objects, gzip, BOM/CRLF, bad lines rejected with the same
reasons), so both warehouses see the same rows. The bytes are read by Spark itself —
``s3a://`` for the bucket (the local S3 endpoint in tests, S3 in production), ``file:`` for a
directory — in parallel on the executors.

Exactly-once: the events of a run are committed first (one Iceberg commit), then the
manifest rows that mark their objects read. A run killed between the two reads those objects
again next time; the models keep the first loaded copy of an event_id (fact_events) and one
row per raw line (rejected_events), so the marts count each event once either way."""

from __future__ import annotations

import io
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote, urlparse

from loader.discovery import discover_new
from loader.sources import ObjectInfo, S3Source, parse_source

log = logging.getLogger("spark")

RAW_TABLES = {
    "clickstream_events": """
        payload string not null, bucket string not null, object_key string not null,
        line_number int not null, object_etag string not null, load_id string not null,
        loaded_at timestamp not null""",
    "load_manifest": """
        bucket string not null, object_key string not null, object_etag string not null,
        object_size bigint not null, lines int not null, events_loaded int not null,
        lines_rejected int not null, load_id string not null, loaded_at timestamp not null,
        object_last_modified timestamp, format string, compressed boolean""",
    "rejected_lines": """
        bucket string not null, object_key string, line_number int, reason string not null,
        line string, load_id string not null, rejected_at timestamp not null""",
    "load_runs": """
        load_id string not null, started_at timestamp not null, finished_at timestamp,
        objects int not null, events int not null, rejects int not null, etag_changes int not null,
        status string not null, error string, source string, failed_objects int not null,
        last_loaded_at timestamp, dbt_status string, dbt_started_at timestamp,
        dbt_finished_at timestamp, models_built int, objects_left int not null""",
    # the PostgreSQL loader's daily full check; empty on Spark (analytics.full_checks reads it)
    "full_checks": """
        check_id string not null, started_at timestamp not null, finished_at timestamp,
        status string not null, tests int, failures int, warnings int,
        failed_tests array<string>, error string""",
}


@dataclass
class RawSummary:
    load_id: str
    source: str
    objects: int = 0
    events: int = 0
    rejects: int = 0
    etag_changes: int = 0
    seconds: float = 0.0
    loaded_at: datetime | None = None
    status: str = "running"


def ensure_raw_tables(spark) -> None:
    spark.sql("create namespace if not exists raw")
    for name, columns in RAW_TABLES.items():
        spark.sql(f"create table if not exists raw.{name} ({columns}) using iceberg")


def _manifest_etags(spark, bucket: str, prefix: str) -> dict[str, str]:
    rows = spark.sql(
        "select object_key, object_etag from raw.load_manifest"
        " where bucket = :bucket and startswith(object_key, :prefix)",
        args={"bucket": bucket, "prefix": prefix},
    ).collect()
    return {r.object_key: r.object_etag for r in rows}


def discover(spark, source, since: datetime, until: datetime) -> tuple[list[ObjectInfo], int]:
    """New objects in the window in listing order, and how many changed after they were loaded:
    the loader's rules (loader.discovery) over the Iceberg manifest."""
    return discover_new(source, lambda prefix: _manifest_etags(spark, source.bucket, prefix), since, until)


def _uri_path(uri: str) -> str:
    """The path part of an object's URI (s3a://bucket/key -> bucket/key, file:///x -> /x)."""
    parsed = urlparse(uri)
    return unquote(parsed.netloc + parsed.path)


def spark_path(source, key: str) -> str:
    """Where Spark reads an object: s3a:// for the bucket, file: for a directory."""
    if isinstance(source, S3Source):
        return f"s3a://{source.bucket}/{key}"
    return "file://" + os.path.join(source.bucket, key)


_UNESCAPE = re.compile(rb"\\(.)", re.S)
_ESCAPES = {b"\\": b"\\", b"t": b"\t", b"n": b"\n", b"r": b"\r"}


def _copy_unescape(value: bytes) -> bytes:
    return _UNESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), value) if b"\\" in value else value


def parse_objects(rows):
    """Executor side: (key, etag, content) -> tagged rows: ("e", key, line, payload, ...) for
    events, ("r", key, line, reason, sample) for rejects, ("m", key, lines, events, rejected,
    fmt, compressed) once per object. The loader's ObjectReader does the parsing."""
    from loader.formats import ObjectReader

    for key, etag, content in rows:
        reader = ObjectReader(io.BytesIO(content), bucket="b", key="k", etag="e", load_id="l", careful=True)
        out = []
        while chunk := reader.read():
            out.append(chunk)
        for row in b"".join(out).split(b"\n"):
            if not row:
                continue
            payload, _bucket, _key, line, _etag, _load = row.rsplit(b"\t", 5)
            yield ("e", key, etag, int(line), _copy_unescape(payload).decode("utf-8"), None, None, None, None)
        stats = reader.stats
        for reject in stats.rejects:
            yield ("r", key, etag, reject.line_number, reject.sample, reject.reason, None, None, None)
        yield ("m", key, etag, stats.lines, stats.fmt, None, stats.events, stats.rejected, stats.compressed)


TAGGED_SCHEMA = (
    "kind string, object_key string, object_etag string, line_number int, text string, reason string,"
    " events int, rejected int, compressed boolean"
)


def load_raw(
    spark,
    spec: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    lookback_hours: float | None = None,
    s3_client_factory=None,
) -> RawSummary:
    """Read the new objects under ``spec`` (a directory or s3://bucket/prefix) into the raw tables."""
    from loader.sources import make_s3_client

    started = time.monotonic()
    started_at = datetime.now(UTC)
    prefix = os.environ.get("RAW_PREFIX", "events/")
    source = parse_source(spec.replace("s3a://", "s3://", 1), prefix, s3_client_factory or make_s3_client)
    until = until or started_at
    hours = (
        lookback_hours if lookback_hours is not None else float(os.environ.get("LOADER_LOOKBACK_HOURS", "48"))
    )
    since = since or (until - timedelta(hours=hours))
    if since > until:
        raise SystemExit(f"--since {since.isoformat()} is after --until {until.isoformat()}")
    summary = RawSummary(load_id=str(uuid.uuid4()), source=source.describe())
    ensure_raw_tables(spark)
    log.info(
        "Listing %s from %s to %s",
        source.describe(),
        since.isoformat(timespec="seconds"),
        until.isoformat(timespec="seconds"),
    )
    new, summary.etag_changes = discover(spark, source, since, until)
    if new:
        _read_and_commit(spark, source, new, summary)
    summary.status = "success"
    summary.seconds = time.monotonic() - started
    _record_run(spark, summary, started_at)
    log.info(
        "Raw: %d objects, %d events, %d rejected lines in %.1f s (%d objects changed after loading)",
        summary.objects,
        summary.events,
        summary.rejects,
        summary.seconds,
        summary.etag_changes,
    )
    return summary


def _read_and_commit(spark, source, new: list[ObjectInfo], summary: RawSummary) -> None:
    from pyspark.sql import functions as F

    paths = [spark_path(source, o.key) for o in new]
    files = spark.read.format("binaryFile").load(paths).select("path", "content")
    # Spark reports a path in its own form (file:/x for file:///x): match on the URI's path
    listed = {_uri_path(path): (o.key, o.etag) for path, o in zip(paths, new, strict=True)}

    def keyed(row):
        key, etag = listed[_uri_path(row.path)]
        return (key, etag, bytes(row.content))

    tagged = spark.createDataFrame(files.rdd.map(keyed).mapPartitions(parse_objects), TAGGED_SCHEMA)
    tagged = tagged.persist()
    loaded_at = datetime.now(UTC).replace(tzinfo=None)
    summary.loaded_at = loaded_at
    lit_bucket, lit_load, lit_at = F.lit(source.bucket), F.lit(summary.load_id), F.lit(loaded_at)
    events = tagged.where("kind = 'e'").select(
        F.col("text").alias("payload"),
        lit_bucket.alias("bucket"),
        "object_key",
        "line_number",
        "object_etag",
        lit_load.alias("load_id"),
        lit_at.alias("loaded_at"),
    )
    events.writeTo("raw.clickstream_events").append()
    rejects = tagged.where("kind = 'r'").select(
        lit_bucket.alias("bucket"),
        "object_key",
        "line_number",
        "reason",
        F.col("text").alias("line"),
        lit_load.alias("load_id"),
        lit_at.alias("rejected_at"),
    )
    rejects.writeTo("raw.rejected_lines").append()
    # a run killed from here on has committed these rows but not marked the objects read: the
    # next run reads them again, and the models keep one copy (fact_events: the first loaded
    # copy of an event_id; rejected_events: one row per raw line)
    log.info("Committed the events and rejects of %d objects; recording them in the manifest", len(new))
    sizes = spark.createDataFrame(
        [(o.key, o.size, o.last_modified.replace(tzinfo=None) if o.last_modified else None) for o in new],
        "object_key string, object_size bigint, object_last_modified timestamp",
    )
    manifest = (
        tagged.where("kind = 'm'")
        .join(sizes, "object_key")
        .select(
            lit_bucket.alias("bucket"),
            "object_key",
            "object_etag",
            "object_size",
            F.col("line_number").alias("lines"),
            F.col("events").alias("events_loaded"),
            F.col("rejected").alias("lines_rejected"),
            lit_load.alias("load_id"),
            lit_at.alias("loaded_at"),
            "object_last_modified",
            F.col("text").alias("format"),
            "compressed",
        )
    )
    manifest.writeTo("raw.load_manifest").append()
    counts = tagged.where("kind = 'm'").agg(F.count("*"), F.sum("events"), F.sum("rejected")).first()
    summary.objects, summary.events, summary.rejects = counts[0], counts[1] or 0, counts[2] or 0
    tagged.unpersist()


def _record_run(spark, summary: RawSummary, started_at: datetime) -> None:
    from pyspark.sql import Row

    finished = datetime.now(UTC).replace(tzinfo=None)
    row = Row(
        load_id=summary.load_id,
        started_at=started_at.replace(tzinfo=None),
        finished_at=finished,
        objects=summary.objects,
        events=summary.events,
        rejects=summary.rejects,
        etag_changes=summary.etag_changes,
        status=summary.status,
        error=None,
        source=summary.source,
        failed_objects=0,
        last_loaded_at=summary.loaded_at,
        dbt_status=None,
        dbt_started_at=None,
        dbt_finished_at=None,
        models_built=None,
        objects_left=0,
    )
    spark.createDataFrame([row], RAW_TABLES["load_runs"].replace(" not null", "")).writeTo(
        "raw.load_runs"
    ).append()


def set_build_status(
    spark, load_id: str, status: str, *, started: bool = False, models_built: int | None = None
) -> None:
    """The build's status on the run's row (running before the build, then success / failed)."""
    moment = "dbt_started_at" if started else "dbt_finished_at"
    spark.sql(
        f"update raw.load_runs set dbt_status = :status, {moment} = :now,"  # noqa: S608 - a column name
        " models_built = coalesce(:models_built, models_built) where load_id = :load_id",
        args={
            "status": status,
            "now": datetime.now(UTC).replace(tzinfo=None),
            "models_built": models_built,
            "load_id": load_id,
        },
    )


__all__ = ["RawSummary", "ensure_raw_tables", "load_raw", "set_build_status"]
