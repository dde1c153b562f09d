"""What a run loads: the time window it scans, and the objects in it that are not yet in the
manifest (an object whose ETag changed after it was loaded is reported, not loaded again)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from loader.sources import ObjectInfo, Source, is_event_file, window_prefixes

log = logging.getLogger("loader")


def parse_moment(text: str, *, end: bool = False) -> datetime:
    """An ISO 8601 date or date-time (UTC unless it says otherwise). A bare date given as
    an end of a window means the end of that day."""
    text = text.strip()
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            moment = datetime(d.year, d.month, d.day, tzinfo=UTC)
            return moment + timedelta(days=1, microseconds=-1) if end else moment
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"not an ISO 8601 date or date-time: {text!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def discover(source: Source, conn, since: datetime, until: datetime) -> tuple[list[ObjectInfo], int]:
    """The objects in the window that are not in the manifest, in listing order (oldest hour
    first), and how many listed objects changed after they were loaded."""
    have_manifest = _manifest_exists(conn)

    def known(prefix: str) -> dict[str, str]:
        return _manifest_etags(conn, source.bucket, prefix) if have_manifest else {}

    return discover_new(source, known, since, until)


def discover_new(
    source: Source, known_etags: Callable[[str], dict[str, str]], since: datetime, until: datetime
) -> tuple[list[ObjectInfo], int]:
    """``discover`` over any manifest: ``known_etags(prefix)`` gives {key: ETag} of the objects
    already loaded under that prefix (the Spark build's manifest is an Iceberg table)."""
    new: list[ObjectInfo] = []
    changed = 0
    kind = "S3 objects" if source.describe().startswith("s3://") else "files"
    prefixes = window_prefixes(source.prefix, since, until)
    empty: list[str] = []
    for prefix in prefixes:
        listed = [o for o in source.list(prefix) if is_event_file(o.key)]
        if not listed:
            empty.append(prefix)
            continue
        # one line per prefix that holds objects (a window of years lists thousands of days:
        # the empty ones are summed up below)
        log.info("Listing %s under prefix %s", kind, prefix, extra={"prefix": prefix})
        known = known_etags(prefix)
        for obj in listed:
            etag = known.get(obj.key)
            if etag is None:
                new.append(obj)
            elif etag != obj.etag:
                changed += 1
                log.warning(
                    "Object %s changed after it was loaded (ETag %s, loaded %s): not loaded again",
                    obj.key,
                    obj.etag,
                    etag,
                    extra={"object_key": obj.key, "etag": obj.etag, "loaded_etag": etag},
                )
    if empty:
        log.info(
            "Listed %d prefix%s under %s with no objects (%s to %s)",
            len(empty),
            "" if len(empty) == 1 else "es",
            source.prefix,
            empty[0],
            empty[-1],
            extra={"empty_prefixes": len(empty)},
        )
    return new, changed


def _manifest_exists(conn) -> bool:
    with conn.cursor() as cur:
        cur.execute("select to_regclass('raw.load_manifest') is not null")
        exists = cur.fetchone()[0]
    conn.rollback()
    return exists


def _manifest_etags(conn, bucket: str, prefix: str) -> dict[str, str]:
    like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    with conn.cursor() as cur:
        cur.execute(
            "select object_key, object_etag from raw.load_manifest where bucket = %s and object_key like %s",
            (bucket, like),
        )
        rows = dict(cur.fetchall())
    conn.rollback()
    return rows
