"""Erasure: ``python -m loader forget --user-id ID | --anonymous-id ID`` removes one person, and
every id stitched to them, from everything the product holds (docs/privacy.md, "Erasure").

The person is what ``export-person`` exports (``loader.person``): the id given, the user id an
anonymous id is stitched to, every anonymous id seen with that user id. Three steps, each
recorded in ``raw.erasure_requests`` before the next starts, so a run killed anywhere is
finished by the next run for any of those ids, and a second run changes nothing:

1. **The warehouse rows**, one transaction (holding the build fence alone, so no load commits
   in between): the keyed hashes of the ids go into the erasure list (``raw.erased_ids``, never
   the ids), the objects that held the person's lines into ``raw.erasure_objects``, and the
   rows go: ``raw.clickstream_events``, ``raw.rejected_lines`` and every table of the staging,
   intermediate and analytics schemas that carries one of the ids or the person's sessions
   (``rejected_events`` by its payload). ``dim_products`` is recomputed for the products the
   person saw (their first and last sighting, the latest attributes), and ``fact_events``
   restated where a product's attributes changed.
2. **The bucket's objects**, one at a time: each is read, every line that carries an erased id
   (any id of the erasure list) is blanked (the other lines keep their line numbers), the object
   is written back, its old versions are deleted where the bucket keeps versions, and the
   manifest takes the new ETag (so discovery does not report a changed object). The objects are
   those the warehouse says held the person's lines, and those of the ingest endpoint's
   ``rejected/`` prefix (events its contract refused, which the loader never reads) that carry
   an erased id anywhere in a record: found by reading every one written since the request's
   last scan (``_scan_rejected``).
3. **The aggregates** that counted the person are rebuilt from the marts (``dbt build
   --full-refresh`` of the ``agg_*`` models, or of every model below ``fact_events`` when a
   session the person was in holds someone else's events too). They read ``fact_events``,
   ``fact_sessions``, ... which keep the whole history, never raw: a trimmed raw table
   (``RAW_TABLE_RETENTION_DAYS``) does not stop it.

The hashes are HMAC-SHA256 under ``ERASURE_HASH_KEY`` (or the Secrets Manager secret
``ERASURE_KEY_SECRET_ARN``), which never lives in the database: the loader computes the same
hash of every new line's ``user_id`` and ``anonymous_id`` in the load transaction and drops the
lines on the list (``drop_erased_lines``)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import logging
import os
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from psycopg2 import sql

from loader.db import BUILD_CLASS, FENCE_KEY, LoaderError, connect
from loader.person import NothingHeld, _exists, _ids_of, person_tables
from loader.runs import migrated_under_build_lock
from loader.settings import Settings, SettingsError
from loader.sources import LocalSource, S3Source, make_s3_client, parse_source

log = logging.getLogger("loader.forget")

AGGREGATES = (
    "agg_events_hourly",
    "agg_product_daily",
    "agg_product_daily_totals",
    "agg_funnel_daily",
    "agg_time_to_purchase_daily",
    "agg_campaign_daily",
    "agg_paths_daily",
    "int_retention_users",
    "agg_retention_weekly",
)
# the models that read raw's history (a full build of them is refused once raw is trimmed, and
# would rebuild from raw): forget removes their rows itself and never rebuilds them
RAW_READERS = ("fact_events", "dim_products", "int_users_stitched", "int_raw_loads", "rejected_events")
# per table, the person's columns that select their rows; a session id selects the rows of a
# session's grain only (fact_events and fact_order_items keep other people's rows of a session)
_NOT_BY_SESSION = frozenset({"fact_events", "fact_order_items"})
_ID_IN_TEXT = re.compile(rb'"(?:user_id|anonymous_id)"\s*:\s*"((?:[^"\\]|\\.)*)"')
# a rejected record of the ingest endpoint holds the event as it was sent: our contract's ids, or
# a Segment message's (an alias's previousId is an anonymous id), at any depth
_ANY_ID_KEYS = frozenset({"user_id", "anonymous_id", "userId", "anonymousId", "previousId"})
_ANY_ID_IN_TEXT = re.compile(
    rb'"(?:user_id|anonymous_id|userId|anonymousId|previousId)"\s*:\s*"((?:[^"\\]|\\.)*)"'
)
# objects written this long before a scan started are read again by the next scan (clock skew
# between this machine and the bucket; a write in flight while the listing ran)
REJECTED_SCAN_MARGIN = timedelta(minutes=15)
_key_cache: dict[str, bytes] = {}
USER_ID, ANONYMOUS_ID = "payload->>'user_id'", "payload->>'anonymous_id'"


class ErasureKeyMissing(SettingsError):
    """Neither ERASURE_HASH_KEY nor ERASURE_KEY_SECRET_ARN is set."""


def erasure_key() -> bytes:
    """The key of the erasure list's hashes: ``ERASURE_HASH_KEY``, or the Secrets Manager secret
    ``ERASURE_KEY_SECRET_ARN`` (its string, or its JSON field ``key``), read once per process."""
    text = os.environ.get("ERASURE_HASH_KEY", "")
    if text:
        return text.encode()
    arn = os.environ.get("ERASURE_KEY_SECRET_ARN", "")
    if not arn:
        raise ErasureKeyMissing(
            "ERASURE_HASH_KEY (or ERASURE_KEY_SECRET_ARN) is not set: the erasure list's hashes need"
            " their key (docs/privacy.md, Erasure)"
        )
    if arn not in _key_cache:
        import boto3

        client = boto3.client("secretsmanager", region_name=os.environ.get("AWS_REGION"))
        secret = client.get_secret_value(SecretId=arn)["SecretString"]
        try:
            value = json.loads(secret)
            secret = value["key"] if isinstance(value, dict) else secret
        except ValueError:
            pass
        _key_cache[arn] = str(secret).encode()
    return _key_cache[arn]


class Hasher:
    """HMAC-SHA256 of an id under the erasure key, in Python and in SQL (PostgreSQL's sha256()
    over the key's inner and outer pads: the same digest, without pgcrypto)."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        block = hashlib.sha256(key).digest() if len(key) > 64 else key
        block = block.ljust(64, b"\0")
        self.ipad = bytes(b ^ 0x36 for b in block)
        self.opad = bytes(b ^ 0x5C for b in block)

    def __call__(self, value: str) -> bytes:
        return hmac.new(self.key, value.encode(), hashlib.sha256).digest()

    @staticmethod
    def sql(expression: str) -> str:
        """The HMAC of a text expression; parameters ``%(ipad)s`` and ``%(opad)s``."""
        return f"sha256(%(opad)s || sha256(%(ipad)s || convert_to({expression}, 'UTF8')))"

    def params(self) -> dict:
        return {"ipad": self.ipad, "opad": self.opad}


# --- the load-time drop


def drop_erased_lines(cur, keys: list[str]) -> dict[str, int]:
    """In a load transaction, after its COPY: delete the lines just copied from ``keys`` that
    carry an erased id; the number dropped per object key. Nothing to do (and no key needed)
    while the erasure list is empty."""
    cur.execute("select exists (select 1 from raw.erased_ids)")
    if not cur.fetchone()[0]:
        return {}
    hasher = Hasher(erasure_key())
    # the rows this transaction copied: loaded_at is the transaction's now() (the column's default)
    erased = "in (select id_hash from raw.erased_ids)"
    # the objects keep the lines in the bucket: each is marked for its erasure request, and the
    # next forget of any of that person's ids rewrites it
    cur.execute(
        "with gone as (delete from raw.clickstream_events where loaded_at = now()"  # noqa: S608 - constants
        f" and object_key = any(%(keys)s) and ({Hasher.sql(USER_ID)} {erased}"
        f" or {Hasher.sql(ANONYMOUS_ID)} {erased}) returning bucket, object_key,"
        f" {Hasher.sql(USER_ID)} as user_hash, {Hasher.sql(ANONYMOUS_ID)} as anonymous_hash),"
        " marked as (insert into raw.erasure_objects (erasure_id, bucket, object_key)"
        " select distinct e.erasure_id, gone.bucket, gone.object_key from gone inner join raw.erased_ids as e"
        " on e.id_hash in (gone.user_hash, gone.anonymous_hash)"
        " on conflict (erasure_id, bucket, object_key) do update set status = 'pending')"
        " select object_key, count(*) from gone group by 1",
        {"keys": keys, **hasher.params()},
    )
    dropped = {key: int(n) for key, n in cur.fetchall()}
    for key, n in dropped.items():
        log.info("Dropped %d lines of erased people from %s", n, key, extra={"object_key": key, "dropped": n})
    return dropped


def erased_rejects(cur, rejects: list[tuple]) -> list[bool]:
    """For rejected lines about to be stored, ``(bucket, key, line_number, reason, sample, load_id)``:
    whether each carries an erased id (read from its text: a rejected line need not be JSON); the
    objects of those that do are marked for their erasure request (see ``drop_erased_lines``)."""
    samples = [row[4] for row in rejects]
    if not any(samples):
        return [False] * len(samples)
    cur.execute("select exists (select 1 from raw.erased_ids)")
    if not cur.fetchone()[0]:
        return [False] * len(samples)
    hasher = Hasher(erasure_key())
    found = [{hasher(_unescape(m)) for m in _ID_IN_TEXT.findall(s.encode())} if s else set() for s in samples]
    every = sorted(set().union(*found))
    if not every:
        return [False] * len(samples)
    cur.execute("select id_hash, erasure_id from raw.erased_ids where id_hash = any(%s)", (every,))
    erased = {bytes(h): e for h, e in cur.fetchall()}
    marks = {
        (erased[h], row[0], row[1])
        for row, hashes in zip(rejects, found, strict=True)
        for h in hashes
        if h in erased
    }
    cur.executemany(
        "insert into raw.erasure_objects (erasure_id, bucket, object_key) values (%s, %s, %s)"
        " on conflict (erasure_id, bucket, object_key) do update set status = 'pending'",
        sorted(marks),
    )
    return [bool(hashes & erased.keys()) for hashes in found]


def _unescape(value: bytes) -> str:
    try:
        return orjson.loads(b'"' + value + b'"')
    except orjson.JSONDecodeError:
        return value.decode(errors="replace")


# --- the summary


@dataclass
class ForgetSummary:
    status: str = "erased"  # erased / already / nothing / incomplete / failed
    erasure_id: str | None = None
    asked: str = ""
    ids: int = 0
    tables: dict[str, int] = field(default_factory=dict)
    objects: list[dict] = field(default_factory=list)
    objects_left: int = 0
    # objects of the ingest endpoint's rejected/ prefix read by this run (those written since the
    # request's last scan)
    rejected_scanned: int = 0
    rejected_scan_seconds: float = 0.0
    rebuild: str | None = None
    models_rebuilt: int = 0
    # models an earlier run of this request recounted before it was stopped (not rebuilt again)
    models_recounted_before: list[str] = field(default_factory=list)
    message: str = ""
    seconds: float = 0.0
    asked_id: str = field(default="", repr=False)

    @property
    def ok(self) -> bool:
        return self.status in ("erased", "already")

    def result(self, with_ids: bool = True) -> dict:
        """The summary; ``with_ids=False`` (the Lambda's, which is logged) without the id asked."""
        out = asdict(self)
        out.pop("asked_id")
        if not with_ids and self.asked_id:
            out["message"] = out["message"].replace(self.asked_id, "…")
        return out


# --- the command


def forget(
    settings: Settings,
    *,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    source: str | None = None,
    s3_client=None,
) -> ForgetSummary:
    """Erase one person (see the module doc). NothingHeld for an id nothing carries and that was
    never erased; LoaderError when it cannot run (database, key)."""
    if (user_id is None) == (anonymous_id is None):
        raise LoaderError("give exactly one of --user-id and --anonymous-id")
    started = time.monotonic()
    asked_kind, asked_id = ("user_id", user_id) if user_id is not None else ("anonymous_id", anonymous_id)
    summary = ForgetSummary(asked=asked_kind, asked_id=asked_id)
    hasher = Hasher(erasure_key())
    conn = connect()
    try:
        with migrated_under_build_lock(conn, settings.build_wait_seconds * 5) as held:
            if not held:
                raise LoaderError("a dbt build held the build lock for too long: run forget again")
            request = _request_of(conn, hasher(asked_id))
            if request is None:
                request = _remove_rows(conn, hasher, asked_kind, user_id, anonymous_id, summary)
            erasure_id, status, rebuild, report = request
            summary.erasure_id = str(erasure_id)
            summary.rebuild = rebuild
            summary.tables = dict(report.get("tables", {}))
            summary.ids = int(report.get("ids", 0))
            if status == "done":
                summary.status = "already"
                summary.message = f"nothing held for {asked_kind} {asked_id}: erased by {erasure_id} ({report.get('finished_at')})"
                # objects that came since with their lines (dropped at load, marked pending)
                left, rewritten = _rewrite_objects(
                    conn, settings, erasure_id, hasher, source, s3_client, summary
                )
                summary.objects = rewritten
                if rewritten:
                    summary.message += f"; {len(rewritten)} objects that came since rewritten"
                if left:
                    summary.status = "incomplete"
                    summary.message += f"; {left} objects could not be rewritten: run forget again"
                return summary
            if status == "removed":
                left, _ = _rewrite_objects(conn, settings, erasure_id, hasher, source, s3_client, summary)
                summary.objects = _objects_done(conn, erasure_id)
                if left:
                    summary.status = "incomplete"
                    summary.message = (
                        f"{left} objects could not be rewritten (another bucket, or an error: see the log);"
                        " run forget again"
                    )
                    return summary
                _set_status(conn, erasure_id, "objects", {"objects": summary.objects})
                status = "objects"
            else:
                summary.objects = _objects_done(conn, erasure_id)
            if status == "objects":
                if not _rebuild(settings, erasure_id, rebuild, report.get("recounted", []), summary):
                    summary.status = "incomplete"
                    summary.message = "recounting the aggregates failed (see the log): run forget again"
                    return summary
                _set_status(conn, erasure_id, "done", {"objects": summary.objects}, finished=True)
            summary.message = f"erased {asked_kind} {asked_id} and {summary.ids - 1} ids stitched to it"
            return summary
    finally:
        summary.seconds = round(time.monotonic() - started, 3)
        conn.close()


def _request_of(conn, asked_hash: bytes):
    """(erasure_id, status, rebuild, report) of the request that erased this id, or None."""
    with conn.cursor() as cur:
        cur.execute(
            "select r.erasure_id, r.status, r.rebuild, r.report || jsonb_build_object('ids', r.ids,"
            " 'finished_at', r.finished_at) from raw.erased_ids as e"
            " inner join raw.erasure_requests as r on e.erasure_id = r.erasure_id where e.id_hash = %s",
            (asked_hash,),
        )
        row = cur.fetchone()
    conn.commit()
    return row


def _set_status(conn, erasure_id, status: str, report: dict, finished: bool = False) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "update raw.erasure_requests set status = %s, report = report || %s::jsonb,"
            " finished_at = case when %s then now() else finished_at end where erasure_id = %s",
            (status, json.dumps(report), finished, erasure_id),
        )
    conn.commit()


def _objects_done(conn, erasure_id) -> list[dict]:
    with conn.cursor() as cur:
        cur.execute(
            "select bucket, object_key, status, lines_removed, versions_deleted from raw.erasure_objects"
            " where erasure_id = %s order by bucket, object_key",
            (erasure_id,),
        )
        rows = cur.fetchall()
    conn.commit()
    return [
        {"bucket": b, "object_key": k, "status": s, "lines_removed": n or 0, "versions_deleted": v or 0}
        for b, k, s, n, v in rows
    ]


def _like_any(values: list[str]) -> list[str]:
    return ["%" + v.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" for v in values]


def _remove_rows(conn, hasher: Hasher, asked_kind, user_id, anonymous_id, summary: ForgetSummary):
    """Step 1, one transaction: the erasure list, the objects to rewrite, every warehouse row."""
    asked = f"{asked_kind} {user_id if user_id is not None else anonymous_id}"
    with conn.cursor() as cur:
        # no load commits while the rows go (loads hold the fence shared), and every load after
        # this transaction sees the erasure list
        cur.execute("select pg_advisory_xact_lock(%s, %s)", (BUILD_CLASS, FENCE_KEY))
        user, anonymous_ids = _ids_of(cur, user_id, anonymous_id)
        ids = sorted({*anonymous_ids, *([user] if user else [])})
        keys = ids
        tables: dict[str, int] = {}
        objects: set[tuple[str, str]] = set()
        found = {"anon": anonymous_ids, "user": user}

        cur.execute(
            "select distinct payload->>'session_id' from raw.clickstream_events"
            " where payload->>'anonymous_id' = any(%(anon)s) or payload->>'user_id' = %(user)s",
            found,
        )
        sessions = {row[0] for row in cur.fetchall() if row[0]}
        products: set[str] = set()
        loads = set()
        others_on_their_devices = False
        has_facts = _exists(cur, "analytics", "fact_events")
        if has_facts:
            cur.execute(
                "select session_id, product_id, loaded_at, user_key from analytics.fact_events"
                " where user_key = any(%(keys)s) or anonymous_id = any(%(anon)s) or user_id = %(user)s",
                {**found, "keys": keys},
            )
            for session_id, product_id, loaded_at, user_key in cur.fetchall():
                # someone else's events on the person's device (another user signed in with one
                # of their anonymous ids) go with the person's ids: whatever was derived from
                # them (that user's orders, sessions, figures) is rebuilt from the events left
                if user_key is not None and user_key not in keys:
                    others_on_their_devices = True
                if session_id:
                    sessions.add(session_id)
                if product_id:
                    products.add(product_id)
                loads.add(loaded_at)
        if _exists(cur, "analytics", "fact_order_items"):
            cur.execute(
                "select distinct product_id from analytics.fact_order_items where user_key = any(%s)", (keys,)
            )
            products.update(row[0] for row in cur.fetchall() if row[0])
        cur.execute(
            "with gone as (delete from raw.clickstream_events where payload->>'anonymous_id' = any(%(anon)s)"
            " or payload->>'user_id' = %(user)s returning bucket, object_key)"
            " select bucket, object_key, count(*) from gone group by 1, 2",
            found,
        )
        rows = cur.fetchall()
        tables["raw.clickstream_events"] = sum(n for _, _, n in rows)
        objects.update((b, k) for b, k, _ in rows)
        cur.execute(
            "with gone as (delete from raw.rejected_lines where line like any(%s) returning bucket, object_key)"
            " select bucket, object_key, count(*) from gone group by 1, 2",
            (_like_any(ids),),
        )
        rows = cur.fetchall()
        tables["raw.rejected_lines"] = sum(n for _, _, n in rows)
        objects.update((b, k) for b, k, _ in rows)
        if loads:
            # the lines of trimmed loads live on in the bucket only
            cur.execute(
                "select distinct bucket, object_key from raw.trimmed_objects where trimmed_loaded_at = any(%s)",
                (sorted(loads),),
            )
            objects.update(cur.fetchall())

        shared = False
        if has_facts and sessions:
            cur.execute(
                "select count(distinct session_id) from analytics.fact_events where session_id = any(%(s)s)"
                " and not (coalesce(user_key = any(%(keys)s), false) or coalesce(anonymous_id = any(%(anon)s), false)"
                " or coalesce(user_id = %(user)s, false))",
                {**found, "keys": keys, "s": sorted(sessions)},
            )
            shared = cur.fetchone()[0] > 0
        shared = shared or others_on_their_devices
        values = {
            "user_key": keys,
            "user_id": [user] if user else [],
            "anonymous_id": anonymous_ids,
            "session_id": sorted(sessions),
        }
        for table_schema, table, condition in person_tables(cur, values, _NOT_BY_SESSION):
            cur.execute(
                sql.SQL("delete from {}.{} where {}").format(
                    sql.Identifier(table_schema), sql.Identifier(table), condition
                ),
                values,
            )
            if cur.rowcount:
                tables[f"{table_schema}.{table}"] = cur.rowcount
        if _exists(cur, "analytics", "rejected_events"):
            cur.execute(
                "with gone as (delete from analytics.rejected_events where payload::text like any(%s)"
                " returning bucket, object_key) select bucket, object_key, count(*) from gone group by 1, 2",
                (_like_any(ids),),
            )
            rows = cur.fetchall()
            if rows:
                tables["analytics.rejected_events"] = sum(n for _, _, n in rows)
            objects.update((b, k) for b, k, _ in rows)
        if products and _exists(cur, "analytics", "dim_products"):
            changed = _recompute_products(cur, sorted(products))
            if changed:
                tables["analytics.dim_products (recomputed)"] = changed

        if not ids or not (any(tables.values()) or objects):
            conn.rollback()
            raise NothingHeld(f"nothing held for {asked}")
        erasure_id = uuid.uuid4()
        rebuild = "derived" if shared else "aggregates"
        report = {"tables": tables}
        cur.execute(
            "insert into raw.erasure_requests (erasure_id, asked, ids, status, rebuild, report)"
            " values (%s, %s, %s, 'removed', %s, %s::jsonb)",
            (str(erasure_id), asked_kind, len(ids), rebuild, json.dumps(report)),
        )
        cur.executemany(
            "insert into raw.erased_ids (id_hash, erasure_id) values (%s, %s) on conflict (id_hash) do nothing",
            [(hasher(i), str(erasure_id)) for i in ids],
        )
        cur.executemany(
            "insert into raw.erasure_objects (erasure_id, bucket, object_key) values (%s, %s, %s)",
            [(str(erasure_id), b, k) for b, k in sorted(objects)],
        )
    conn.commit()
    for table, n in tables.items():
        log.info("Removed %d rows from %s", n, table, extra={"table": table, "rows": n})
    return str(erasure_id), "removed", rebuild, report | {"ids": len(ids)}


def _recompute_products(cur, products: list[str]) -> int:
    """dim_products for the products the person saw, from the sightings left: what a full build
    computes (first and last sighting, the latest attributes). Where raw is trimmed the sightings
    of the trimmed loads are gone: the first and last sighting then also come from fact_events
    and fact_order_items, and the attributes stay unless no sighting is left. fact_events is
    restated where a product's attributes changed; a product nobody else saw goes."""
    cur.execute("select exists (select 1 from raw.trimmed_loads)")
    trimmed = cur.fetchone()[0]
    params = {"products": products}
    sightings = (
        "select product_id, product_name, product_category, product_brand, product_price, event_at, loaded_at"
        " from intermediate.int_product_sightings where product_id = any(%(products)s) and not is_bot"
    )
    if not trimmed:
        cur.execute(
            f"with sightings as ({sightings}),"  # noqa: S608 - constant
            " spans as (select product_id, min(event_at) as first_seen_at, max(event_at) as last_seen_at,"
            " max(loaded_at) as last_loaded_at from sightings group by 1),"
            " ranked as (select sightings.*, row_number() over (partition by product_id order by"
            " case when product_name is not null then 0 else 1 end, event_at desc, loaded_at desc) as n"
            " from sightings)"
            " update analytics.dim_products as d set product_name = r.product_name,"
            " product_category = r.product_category, product_brand = r.product_brand,"
            " product_price = r.product_price, first_seen_at = s.first_seen_at, last_seen_at = s.last_seen_at,"
            " attributes_seen_at = r.event_at, last_loaded_at = s.last_loaded_at,"
            " attributes_changed_at = case when (d.product_name, d.product_category, d.product_brand,"
            " d.product_price) is distinct from (r.product_name, r.product_category, r.product_brand,"
            " r.product_price) then now() else d.attributes_changed_at end, dbt_updated_at = now()"
            " from ranked as r inner join spans as s on r.product_id = s.product_id"
            " where r.n = 1 and d.product_id = r.product_id and (d.product_name, d.product_category,"
            " d.product_brand, d.product_price, d.first_seen_at, d.last_seen_at, d.attributes_seen_at)"
            " is distinct from (r.product_name, r.product_category, r.product_brand, r.product_price,"
            " s.first_seen_at, s.last_seen_at, r.event_at)",
            params,
        )
        changed = cur.rowcount
        cur.execute(
            f"delete from analytics.dim_products where product_id = any(%(products)s)"  # noqa: S608
            f" and product_id not in (select product_id from ({sightings}) as left_sightings)",
            params,
        )
        changed += cur.rowcount
    else:
        cur.execute(
            f"with seen as (select product_id, event_at from ({sightings}) as raw_sightings"  # noqa: S608
            " union all select product_id, event_at from analytics.fact_events"
            " where product_id = any(%(products)s)"
            " union all select product_id, ordered_at from analytics.fact_order_items"
            " where product_id = any(%(products)s)),"
            " spans as (select product_id, min(event_at) as first_seen_at, max(event_at) as last_seen_at"
            " from seen group by 1)"
            " update analytics.dim_products as d set first_seen_at = s.first_seen_at,"
            " last_seen_at = s.last_seen_at from spans as s where d.product_id = s.product_id"
            " and (d.first_seen_at, d.last_seen_at) is distinct from (s.first_seen_at, s.last_seen_at)",
            params,
        )
        changed = cur.rowcount
        cur.execute(
            f"delete from analytics.dim_products as d where d.product_id = any(%(products)s)"  # noqa: S608
            f" and not exists (select 1 from ({sightings}) as s where s.product_id = d.product_id)"
            " and not exists (select 1 from analytics.fact_events as f where f.product_id = d.product_id)"
            " and not exists (select 1 from analytics.fact_order_items as i where i.product_id = d.product_id)",
            params,
        )
        changed += cur.rowcount
    cur.execute(
        "update analytics.fact_events as f set product_name = d.product_name,"
        " product_category = d.product_category, product_brand = d.product_brand,"
        " product_price = d.product_price, dbt_updated_at = now()"
        " from analytics.dim_products as d where f.product_id = d.product_id and d.product_id = any(%(products)s)"
        " and (f.product_name, f.product_category, f.product_brand, f.product_price)"
        " is distinct from (d.product_name, d.product_category, d.product_brand, d.product_price)",
        params,
    )
    return changed


# --- step 2: the bucket's objects


def filter_content(data: bytes, is_erased, deep: bool = False) -> tuple[bytes, int]:
    """The object without the lines whose ids ``is_erased`` (a set of hashes' test) says are
    erased, and how many went. NDJSON lines are blanked, so every other line keeps its line
    number; a JSON array loses its elements; one object over several lines becomes empty.
    Gzip stays gzip. An event is the person's by its top-level ``user_id`` or ``anonymous_id``
    (as the warehouse's rows are found); ``deep`` (a rejected record of the ingest endpoint) by
    any id anywhere in the record, a Firehose error record's ``rawData`` decoded."""
    compressed = data[:2] == b"\x1f\x8b"
    text = gzip.decompress(data) if compressed else data
    body = text[3:] if text.startswith(b"\xef\xbb\xbf") else text
    is_theirs = (
        (lambda value: _holds_erased_id(value, is_erased))
        if deep
        else (lambda value: _event_is_erased(value, is_erased))
    )
    removed = 0
    out = text
    try:
        whole = orjson.loads(body)
    except orjson.JSONDecodeError:
        whole = None
    if isinstance(whole, list):
        kept = [element for element in whole if not is_theirs(element)]
        removed = len(whole) - len(kept)
        out = orjson.dumps(kept) + b"\n"
    elif isinstance(whole, dict) and b"\n" in body.strip():
        if is_theirs(whole):
            removed, out = 1, b""
    else:
        pattern = _ANY_ID_IN_TEXT if deep else _ID_IN_TEXT
        lines = text.split(b"\n")
        for number, line in enumerate(lines):
            if line.strip() and _line_is_erased(line, is_theirs, is_erased, pattern):
                lines[number] = b""
                removed += 1
        out = b"\n".join(lines)
    if not removed:
        return data, 0
    return (gzip.compress(out, mtime=0) if compressed else out), removed


def _event_is_erased(event, is_erased) -> bool:
    if not isinstance(event, dict):
        return False
    return any(isinstance(event.get(k), str) and is_erased(event[k]) for k in ("user_id", "anonymous_id"))


def _holds_erased_id(value, is_erased) -> bool:
    """Whether an erased id is anywhere in a parsed record: under an id key at any depth, in a
    string that is itself JSON text, or in a Firehose error record's base64 ``rawData``."""
    if isinstance(value, list):
        return any(_holds_erased_id(v, is_erased) for v in value)
    if not isinstance(value, dict):
        return isinstance(value, str) and '"' in value and _text_holds_erased_id(value.encode(), is_erased)
    for key, v in value.items():
        if isinstance(v, str):
            if key in _ANY_ID_KEYS and is_erased(v):
                return True
            if key == "rawData" and _raw_data_holds_erased_id(v, is_erased):
                return True
            if '"' in v and _text_holds_erased_id(v.encode(), is_erased):
                return True
        elif isinstance(v, dict | list) and _holds_erased_id(v, is_erased):
            return True
    return False


def _text_holds_erased_id(text: bytes, is_erased) -> bool:
    return any(is_erased(_unescape(m)) for m in _ANY_ID_IN_TEXT.findall(text))


def _raw_data_holds_erased_id(encoded: str, is_erased) -> bool:
    try:
        data = base64.b64decode(encoded, validate=True)
    except ValueError:
        return False
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            if _holds_erased_id(orjson.loads(line), is_erased):
                return True
        except orjson.JSONDecodeError:
            if _text_holds_erased_id(line, is_erased):
                return True
    return False


def _line_is_erased(line: bytes, is_theirs, is_erased, pattern=_ID_IN_TEXT) -> bool:
    try:
        return is_theirs(orjson.loads(line))
    except orjson.JSONDecodeError:
        return any(is_erased(_unescape(m)) for m in pattern.findall(line))


def _rewrite_objects(
    conn, settings, erasure_id, hasher, source, s3_client, summary: ForgetSummary, scan: bool = True
):
    """Step 2: the ingest endpoint's rejected objects scanned (unless ``scan`` is false: the
    caller scanned for it), then every pending object of the request rewritten; (the number left
    pending, the objects rewritten by this call)."""
    done: set[tuple[str, str]] = set()
    owners = _erased_hashes(conn)

    def is_erased(value: str) -> bool:
        return hasher(value) in owners

    src = _source(settings, source, s3_client)
    if scan:
        scan_started = time.monotonic()
        summary.rejected_scanned += _scan_rejected(conn, settings, [erasure_id], src, hasher, owners)
        summary.rejected_scan_seconds += round(time.monotonic() - scan_started, 3)
    with conn.cursor() as cur:
        cur.execute(
            "select bucket, object_key from raw.erasure_objects where erasure_id = %s and status = 'pending'"
            " order by bucket, object_key",
            (erasure_id,),
        )
        pending = cur.fetchall()
    conn.commit()
    versioned = isinstance(src, S3Source) and _versioned(src)
    left = 0
    for bucket, key in pending:
        if bucket != src.bucket:
            log.error("Cannot rewrite %s: it is in %s, not in the source %s", key, bucket, src.describe())
            left += 1
            continue

        def before_writing(removed: int, bucket=bucket, key=key) -> None:
            # the count is kept before the object is written: killed after the write, the next
            # run finds the lines gone already and keeps this count
            with conn.cursor() as cur:
                cur.execute(
                    "update raw.erasure_objects set lines_removed = %s"
                    " where erasure_id = %s and bucket = %s and object_key = %s",
                    (removed, erasure_id, bucket, key),
                )
            conn.commit()

        try:
            deep = key.startswith(settings.rejected_prefix)
            outcome = _rewrite_one(src, key, is_erased, versioned, before_writing, deep)
        except Exception as exc:  # one object's failure leaves it pending for the next run
            log.error("Rewriting %s failed: %s", key, exc, extra={"object_key": key})
            left += 1
            continue
        status, removed, versions, etag, size = outcome
        with conn.cursor() as cur:
            if etag is not None:
                cur.execute(
                    "update raw.load_manifest set object_etag = %s, object_size = %s"
                    " where bucket = %s and object_key = %s",
                    (etag, size, bucket, key),
                )
            cur.execute(
                "update raw.erasure_objects set status = %s,"
                " lines_removed = case when %s > 0 then %s else coalesce(lines_removed, 0) end,"
                " versions_deleted = coalesce(versions_deleted, 0) + %s"
                " where erasure_id = %s and bucket = %s and object_key = %s",
                (status, removed, removed, versions, erasure_id, bucket, key),
            )
        conn.commit()
        done.add((bucket, key))
        log.info(
            "Rewrote %s: %d lines removed, %d old versions deleted",
            key,
            removed,
            versions,
            extra={"object_key": key, "lines_removed": removed, "versions_deleted": versions},
        )
    summary.objects_left = left
    return left, [o for o in _objects_done(conn, erasure_id) if (o["bucket"], o["object_key"]) in done]


def _erased_hashes(conn) -> dict[bytes, object]:
    """The erasure list: each id's hash, and the request that erased it."""
    with conn.cursor() as cur:
        cur.execute("select id_hash, erasure_id from raw.erased_ids")
        owners = {bytes(h): e for h, e in cur.fetchall()}
    conn.commit()
    return owners


def _source(settings: Settings, source, s3_client):
    try:
        return parse_source(
            source or settings.default_source,
            settings.raw_prefix,
            lambda: s3_client or make_s3_client(settings.s3_max_attempts),
        )
    except ValueError as exc:
        raise LoaderError(str(exc)) from exc


def _scan_rejected(conn, settings: Settings, erasure_ids: list, src, hasher: Hasher, owners: dict) -> int:
    """The ingest endpoint's ``rejected/`` objects (the loader never reads them, so the warehouse
    cannot say which hold the person) that carry an erased id anywhere in a record, each marked
    pending for the request that erased the id; the number read. Only those written since the
    requests' last scan began (less ``REJECTED_SCAN_MARGIN``; the earliest of ``erasure_ids``)
    are read, in parallel, once for all of them; the scan's start is recorded with the marks, so
    a run killed while scanning scans again and a later run reads only what came since. They
    expire after ``RejectedRetentionDays``, which bounds the first scan."""
    with conn.cursor() as cur:
        cur.execute(
            "select report ->> 'rejected_scanned_from' from raw.erasure_requests where erasure_id = any(%s::uuid[])",
            ([str(e) for e in erasure_ids],),
        )
        marks = [row[0] for row in cur.fetchall()]
    conn.commit()
    since = None if not marks or None in marks else min(datetime.fromisoformat(m) for m in marks)
    started = datetime.now(UTC)
    listed = [
        obj
        for obj in src.list(settings.rejected_prefix)
        if since is None or obj.last_modified is None or obj.last_modified >= since
    ]

    def read(obj) -> tuple[str, set]:
        if isinstance(src, LocalSource):
            data = src.fetch(obj)
        else:
            data = src.client.get_object(Bucket=src.bucket, Key=obj.key)["Body"].read()
        found: set = set()

        def is_erased(value: str) -> bool:
            owner = owners.get(hasher(value))
            if owner is not None:
                found.add(owner)
            return owner is not None

        filter_content(data, is_erased, deep=True)
        return obj.key, found

    workers = max(1, min(settings.fetch_concurrency, src.max_fetch_concurrency))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        holding = sorted((key, str(owner)) for key, found in pool.map(read, listed) for owner in found)
    with conn.cursor() as cur:
        cur.executemany(
            "insert into raw.erasure_objects (erasure_id, bucket, object_key) values (%s, %s, %s)"
            " on conflict (erasure_id, bucket, object_key) do update set status = 'pending'",
            [(owner, src.bucket, key) for key, owner in holding],
        )
        cur.execute(
            "update raw.erasure_requests set report = report || jsonb_build_object('rejected_scanned_from', %s::text)"
            " where erasure_id = any(%s::uuid[])",
            ((started - REJECTED_SCAN_MARGIN).isoformat(), [str(e) for e in erasure_ids]),
        )
    conn.commit()
    log.info(
        "Scanned %d rejected objects under %s%s: %d hold an erased id",
        len(listed),
        settings.rejected_prefix,
        f" written since {since.isoformat()}" if since else "",
        len({key for key, _ in holding}),
        extra={"rejected_scanned": len(listed), "rejected_holding": len(holding)},
    )
    return len(listed)


def finish_erasures(settings: Settings, *, source: str | None = None, s3_client=None) -> dict | None:
    """The daily check's erasure upkeep, as ``forget`` run again for every finished request
    would do it: the objects a load marked since (a re-sent event of an erased person's, dropped
    at load but still in the bucket) and the ingest endpoint's ``rejected/`` objects written since
    the last scan (one scan for every request) are rewritten. None when nothing was ever erased
    (no key needed then); otherwise what it did. Holds the build lock, as forget does."""
    conn = connect()
    try:
        with conn.cursor() as cur:
            cur.execute("select to_regclass('raw.erasure_requests') is not null")
            if not cur.fetchone()[0]:
                return None
            cur.execute(
                "select erasure_id from raw.erasure_requests where status = 'done' order by requested_at"
            )
            requests = [row[0] for row in cur.fetchall()]
        conn.commit()
        if not requests:
            return None
        started = time.monotonic()
        hasher = Hasher(erasure_key())
        summary = ForgetSummary(status="already")
        rewritten: list[dict] = []
        left = 0
        with migrated_under_build_lock(conn, settings.build_wait_seconds * 5) as held:
            if not held:
                return {
                    "status": "skipped",
                    "reason": "a build held the lock for too long; the next check does it",
                }
            src = _source(settings, source, s3_client)
            summary.rejected_scanned = _scan_rejected(
                conn, settings, requests, src, hasher, _erased_hashes(conn)
            )
            for erasure_id in requests:
                n, objects = _rewrite_objects(
                    conn,
                    settings,
                    erasure_id,
                    hasher,
                    source,
                    s3_client or getattr(src, "client", None),
                    summary,
                    scan=False,
                )
                left += n
                rewritten += objects
        result = {
            "status": "incomplete" if left else "done",
            "requests": len(requests),
            "rejected_scanned": summary.rejected_scanned,
            "objects_rewritten": len(rewritten),
            "lines_removed": sum(o["lines_removed"] for o in rewritten),
            "objects_left": left,
            "seconds": round(time.monotonic() - started, 3),
        }
        log.info(
            "Erasure upkeep: %d objects rewritten (%d lines) for %d requests, %d rejected objects read, %d left",
            result["objects_rewritten"],
            result["lines_removed"],
            result["requests"],
            result["rejected_scanned"],
            left,
            extra=result,
        )
        return result
    finally:
        conn.close()


def _versioned(src: S3Source) -> bool:
    status = src.client.get_bucket_versioning(Bucket=src.bucket).get("Status")
    return status in ("Enabled", "Suspended")


def _rewrite_one(src, key: str, is_erased, versioned: bool, before_writing, deep: bool = False):
    """(status, lines removed, old versions deleted, the object's ETag now, its size)."""
    if isinstance(src, LocalSource):
        path = Path(src.root) / key
        if not path.exists():
            return "gone", 0, 0, None, None
        data = path.read_bytes()
        new, removed = filter_content(data, is_erased, deep)
        if removed:
            before_writing(removed)
            tmp = path.with_name(path.name + ".forget")
            tmp.write_bytes(new)
            os.replace(tmp, path)
        return "done", removed, 0, hashlib.md5(new, usedforsecurity=False).hexdigest(), len(new)
    from botocore.exceptions import ClientError

    client = src.client
    try:
        got = client.get_object(Bucket=src.bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return "gone", 0, 0, None, None
        raise
    data = got["Body"].read()
    etag, version = got["ETag"].strip('"'), got.get("VersionId")
    new, removed = filter_content(data, is_erased, deep)
    if removed:
        before_writing(removed)
        extra = {k: got[k] for k in ("ContentType", "ContentEncoding") if got.get(k)}
        put = client.put_object(Bucket=src.bucket, Key=key, Body=new, **extra)
        etag, version = put["ETag"].strip('"'), put.get("VersionId")
    deleted = 0
    if versioned:
        paginator = client.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=src.bucket, Prefix=key):
            for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                if item["Key"] == key and item["VersionId"] != version:
                    client.delete_object(Bucket=src.bucket, Key=key, VersionId=item["VersionId"])
                    deleted += 1
    return "done", removed, deleted, etag, len(new)


# --- step 3: the aggregates


def _rebuild(
    settings: Settings, erasure_id, rebuild: str | None, recounted: list[str], summary: ForgetSummary
) -> bool:
    """Recount what counted the person: a full build of the aggregates (or of every model below
    fact_events but the raw readers), from the marts. Each model is recorded in the request
    (report.recounted) the moment its rebuild commits, and a run after a stopped one (a Lambda
    timeout, a kill) leaves those out: every run gets further, even when the whole recount is
    longer than one invocation may run."""
    from loader.dbt_step import run_dbt_build

    if rebuild == "derived":
        select = ("--select", "fact_events+", "--exclude", *RAW_READERS, "tag:full_scan")
    else:
        select = ("--select", *AGGREGATES, "--exclude", "tag:full_scan")
    summary.models_recounted_before = list(recounted)
    done_before = ("--exclude", *recounted) if recounted else ()
    log.info(
        "Recounting the aggregates that counted the erased person: dbt build --full-refresh %s%s",
        rebuild,
        f" (recounted by an earlier run: {', '.join(recounted)})" if recounted else "",
    )
    progress = connect()
    progress.autocommit = True

    def record(entry: dict) -> None:
        if entry["resource_type"] != "model" or entry["status"] != "success":
            return
        with progress.cursor() as cur:
            cur.execute(
                "update raw.erasure_requests set report = jsonb_set(report, '{recounted}',"
                " coalesce(report -> 'recounted', '[]'::jsonb) || to_jsonb(%s::text))"
                " where erasure_id = %s",
                (entry["node"], erasure_id),
            )

    try:
        outcome = run_dbt_build(
            settings.dbt_project_dir,
            settings.dbt_profiles_dir,
            in_lambda=settings.in_lambda,
            # --quiet: dbt writes no progress to stdout (the command prints its report there); each
            # node is still logged by loader.dbt_step
            extra_args=(
                "--quiet",
                "--full-refresh",
                *select,
                *done_before,
                "--exclude-resource-type",
                "unit_test",
            ),
            on_node=record,
        )
    finally:
        progress.close()
    summary.models_rebuilt = outcome.models_built
    if not outcome.success:
        log.error("Recounting the aggregates failed: %s", outcome.error)
    return outcome.success


def format_report(summary: ForgetSummary) -> str:
    """What was removed, table by table and object by object (the command's output)."""
    lines = [f"forget {summary.status}: {summary.message}"]
    for table, n in sorted(summary.tables.items()):
        lines.append(f"  table {table}: {n} rows")
    for obj in summary.objects:
        lines.append(
            f"  object {obj['bucket']}/{obj['object_key']}: {obj['lines_removed']} lines removed,"
            f" {obj['versions_deleted']} old versions deleted ({obj['status']})"
        )
    lines.append(
        f"  rejected/: {summary.rejected_scanned} objects of the ingest endpoint's read in"
        f" {summary.rejected_scan_seconds:.1f}s (those written since the last scan for this request)"
    )
    if summary.rebuild and summary.status == "erased":
        lines.append(
            f"  recounted: {summary.models_rebuilt} models rebuilt from the marts ({summary.rebuild})"
            + (
                f", after {len(summary.models_recounted_before)} by an earlier run"
                if summary.models_recounted_before
                else ""
            )
        )
    lines.append(f"  in {summary.seconds:.1f}s")
    return "\n".join(lines)
