"""Right of access: ``python -m loader export-person --user-id ID | --anonymous-id ID`` prints
one JSON document of everything the warehouse holds about one person.

The person is the id given and every id stitched to it: a user id's anonymous ids (the
visitors it signed in from, ``intermediate.int_users_stitched``, and every raw line that
carried both), an anonymous id's user (its stitched user, whose other anonymous ids follow).
Their ``user_key`` in the marts is the user id, or the anonymous id of a visitor never stitched.

The document holds the raw lines the warehouse keeps that carry one of those ids
(``raw.clickstream_events``), the rejected lines that mention one (``raw.rejected_lines``), and,
for every table of the staging, intermediate and analytics schemas with a ``user_key``,
``user_id``, ``anonymous_id`` or ``session_id`` column, its rows for the person (a session id
counts when one of the person's events carried it). Aggregates hold no one's rows and are
not listed. Lines trimmed from raw (``RAW_TABLE_RETENTION_DAYS``) are in the bucket and, typed,
in ``analytics.fact_events``."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from psycopg2 import sql

from loader.db import LoaderError, connect

SCHEMAS = ("staging", "intermediate", "analytics")


class NothingHeld(LoaderError):
    """No row anywhere carries the id."""


def person_tables(cur, values: dict[str, list], skip_sessions: frozenset[str] = frozenset()):
    """(schema, table, the condition on its rows of the person) for every table of the staging,
    intermediate and analytics schemas with a column of ``values`` (``{column: the person's
    values}``; a column with none is left out, and so is session_id in the tables named in
    ``skip_sessions``). A partitioned table counts once, not again through its partitions. The
    condition's placeholders are the column names: execute it with ``values``."""
    cur.execute(
        "select c.table_schema, c.table_name, array_agg(c.column_name::text order by c.ordinal_position)"
        " from information_schema.columns as c join information_schema.tables as t"
        " on t.table_schema = c.table_schema and t.table_name = c.table_name"
        " join pg_class as k on k.oid = format('%%I.%%I', c.table_schema, c.table_name)::regclass"
        " where c.table_schema = any(%s) and t.table_type = 'BASE TABLE' and c.column_name = any(%s)"
        " and not k.relispartition"
        " group by 1, 2 order by 1, 2",
        (list(SCHEMAS), list(values)),
    )
    found = []
    for schema, table, columns in cur.fetchall():
        conditions = [
            sql.SQL("{} = any({})").format(sql.Identifier(column), sql.Placeholder(column))
            for column in columns
            if values[column] and not (column == "session_id" and table in skip_sessions)
        ]
        if conditions:
            found.append((schema, table, sql.SQL(" or ").join(conditions)))
    return found


def _ids_of(cur, user_id: str | None, anonymous_id: str | None) -> tuple[str | None, list[str]]:
    """(the user id, the anonymous ids) of the person: the id given and every id stitched to it."""
    anonymous_ids: set[str] = set()
    if anonymous_id is not None:
        anonymous_ids.add(anonymous_id)
        if user_id is None and _exists(cur, "intermediate", "int_users_stitched"):
            cur.execute(
                "select user_id from intermediate.int_users_stitched where anonymous_id = %s", (anonymous_id,)
            )
            row = cur.fetchone()
            user_id = row[0] if row else None
        if user_id is None:
            cur.execute(
                "select payload->>'user_id' from raw.clickstream_events where payload->>'anonymous_id' = %s"
                " and payload->>'user_id' is not null order by loaded_at, line_number limit 1",
                (anonymous_id,),
            )
            row = cur.fetchone()
            user_id = row[0] if row else None
    if user_id is not None:
        if _exists(cur, "intermediate", "int_users_stitched"):
            cur.execute(
                "select anonymous_id from intermediate.int_users_stitched where user_id = %s", (user_id,)
            )
            anonymous_ids.update(row[0] for row in cur.fetchall())
        cur.execute(
            "select distinct payload->>'anonymous_id' from raw.clickstream_events where payload->>'user_id' = %s",
            (user_id,),
        )
        anonymous_ids.update(row[0] for row in cur.fetchall() if row[0])
    return user_id, sorted(anonymous_ids)


def _exists(cur, schema: str, table: str) -> bool:
    cur.execute("select to_regclass(%s) is not null", (f"{schema}.{table}",))
    return bool(cur.fetchone()[0])


def _rows(cur, query, params) -> list[dict]:
    cur.execute(query, params)
    columns = [d[0] for d in cur.description]
    return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]


def export_person(*, user_id: str | None = None, anonymous_id: str | None = None) -> dict:
    """The document (see the module doc); NothingHeld when no row carries the id."""
    if (user_id is None) == (anonymous_id is None):
        raise LoaderError("give exactly one of --user-id and --anonymous-id")
    asked = f"user_id {user_id}" if user_id is not None else f"anonymous_id {anonymous_id}"
    conn = connect()
    try:
        with conn.cursor() as cur:
            if not _exists(cur, "raw", "clickstream_events"):
                raise NothingHeld(f"nothing held for {asked}: the warehouse has no raw table yet")
            user_id, anonymous_ids = _ids_of(cur, user_id, anonymous_id)
            user_keys = sorted({*anonymous_ids, *([user_id] if user_id else [])})
            raw = _rows(
                cur,
                "select payload, bucket, object_key, line_number, loaded_at from raw.clickstream_events"
                " where payload->>'anonymous_id' = any(%(anon)s) or payload->>'user_id' = %(user)s"
                " order by loaded_at, object_key, line_number",
                {"anon": anonymous_ids, "user": user_id},
            )
            sessions = sorted(
                {r["payload"].get("session_id") for r in raw if isinstance(r["payload"], dict)} - {None}
            )
            tables: dict[str, list[dict]] = {}
            if _exists(cur, "analytics", "fact_events"):
                cur.execute(
                    "select distinct session_id from analytics.fact_events where user_key = any(%(keys)s)"
                    " or anonymous_id = any(%(anon)s)",
                    {"keys": user_keys, "anon": anonymous_ids},
                )
                sessions = sorted({*sessions, *(row[0] for row in cur.fetchall() if row[0])})
            values = {
                "user_key": user_keys,
                "user_id": [user_id] if user_id else [],
                "anonymous_id": anonymous_ids,
            }
            values["session_id"] = sessions
            for schema, table, condition in person_tables(cur, values):
                query = sql.SQL("select * from {}.{} where {}").format(
                    sql.Identifier(schema), sql.Identifier(table), condition
                )
                found = _rows(cur, query, values)
                if found:
                    tables[f"{schema}.{table}"] = found
            rejected = []
            if _exists(cur, "raw", "rejected_lines"):
                needles = [f"%{value}%" for value in user_keys]
                rejected = _rows(
                    cur,
                    "select bucket, object_key, line_number, reason, line, rejected_at from raw.rejected_lines"
                    " where line like any(%s) order by rejected_at, object_key, line_number",
                    (needles,),
                )
        conn.rollback()
    finally:
        conn.close()
    if not raw and not tables and not rejected:
        raise NothingHeld(f"nothing held for {asked}")
    return {
        "person": {
            "user_id": user_id,
            "anonymous_ids": anonymous_ids,
            "user_keys": user_keys,
            "session_ids": sessions,
        },
        "exported_at": datetime.now(UTC).isoformat(),
        "raw_events": raw,
        "rejected_lines": rejected,
        "tables": tables,
        "counts": {
            "raw_events": len(raw),
            "rejected_lines": len(rejected),
            **{k: len(v) for k, v in tables.items()},
        },
    }


def to_json(document: dict) -> str:
    return json.dumps(document, default=str, indent=1, sort_keys=False)
