"""What every query shares: running a statement with bound parameters (keeping the exact SQL
that ran, for *Show SQL*), whitelisted identifiers, and the one device/source segment filter.

User input only ever reaches the database as bound parameters. The few identifiers a user can
choose (a breakdown dimension, a ranking metric) are looked up in fixed whitelists; anything
else raises `ValueError`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import pandas as pd
from psycopg2 import sql

log = logging.getLogger("dashboards.queries")


class Refused(Exception):
    """The warehouse refused a question a person asked (a funnel spec it cannot answer): the
    message names what is wrong and is meant for the person; `sql` is the statement refused."""

    def __init__(self, message: str, sql: str) -> None:
        super().__init__(message)
        self.sql = sql


@dataclass
class QueryResult:
    """Rows of one query and the exact SQL that produced them."""

    name: str
    sql: str
    df: pd.DataFrame = field(default_factory=pd.DataFrame)
    error: str | None = None

    @property
    def empty(self) -> bool:
        return self.df.empty


def _plain(value):
    if isinstance(value, Decimal):
        return float(value)
    return value


def run(conn, name: str, query: str | sql.Composable, params: dict) -> QueryResult:
    """Run one query with bound parameters; keep the mogrified SQL for display."""
    with conn.cursor() as cur:
        text = cur.mogrify(query, params).decode()
        cur.execute(text)
        columns = [d.name for d in cur.description]
        rows = [tuple(_plain(v) for v in row) for row in cur.fetchall()]
    log.debug("query ran: %s", name, extra={"query": name, "rows": len(rows)})
    return QueryResult(name=name, sql=_tidy(text), df=pd.DataFrame(rows, columns=columns))


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    indent = min((len(x) - len(x.lstrip()) for x in lines[1:] if x.strip()), default=0)
    body = [lines[0].strip()] + [x[indent:] for x in lines[1:]]
    return "\n".join(body) + ";"


def _list_or_none(values) -> list[str] | None:
    """An empty selection means 'all': bound as NULL so the filter drops out."""
    values = [str(v) for v in (values or [])]
    return values or None


def _whitelisted(mapping: dict[str, str], key: str, what: str) -> sql.SQL:
    if key not in mapping:
        raise ValueError(f"unknown {what}: {key!r}")
    return sql.SQL(mapping[key])


def _q(*parts, **identifiers) -> sql.Composed:
    """Join fixed SQL fragments (strings or `sql.SQL`), filling `{name}` slots from whitelisted
    identifiers/expressions. Never called with user input as a fragment."""
    pieces = []
    for part in parts:
        if isinstance(part, str):
            part = sql.SQL(part)
            if identifiers:
                part = part.format(**identifiers)
        pieces.append(part)
    return sql.Composed(pieces)


def segment_filter(devices=None, sources=None, *, alias: str = "", indent: int = 10) -> tuple[sql.SQL, dict]:
    """The device/source filter every segmented query shares: the `and ...` lines of a `where`
    clause and their bound parameters (an empty selection is bound as NULL: "all").

    `alias` (the relation's alias, fixed text from this package) qualifies the columns;
    `indent` lines the fragment up with the query around it, so the shown SQL reads well."""
    column = f"{alias}." if alias else ""
    pad = " " * indent
    fragment = sql.SQL(
        f"\n{pad}and (%(devices)s::text[] is null or {column}device_type = any(%(devices)s::text[]))"
        f"\n{pad}and (%(sources)s::text[] is null or {column}traffic_source = any(%(sources)s::text[]))\n"
    )
    return fragment, {"devices": _list_or_none(devices), "sources": _list_or_none(sources)}


def period(start: date, end: date, segment_params: dict) -> dict:
    """The parameters of a dated, segmented query."""
    return {"start": start, "end": end, **segment_params}
