"""The funnel's queries (Overview and Funnel pages), over `agg_funnel_daily` and
`agg_time_to_purchase_daily`. The steps come from the dbt project (`settings.py`). The Funnel
page's builder calls the warehouse's `analytics.funnel(spec jsonb)` and keeps its saved funnels
in `analytics.saved_funnels`."""

from __future__ import annotations

import json
from datetime import date

import psycopg2
import psycopg2.errors
from psycopg2 import sql

from .base import QueryResult, Refused, _q, _tidy, _whitelisted, period, run, segment_filter
from .settings import settings

# breakdown dimensions a user may pick: key -> SQL expression (fixed text, never user input)
FUNNEL_BREAKDOWNS = {
    "device_type": "device_type",
    "traffic_source": "traffic_source",
    "week": "date_trunc('week', session_date)::date::text",
}


def _sessions(step: str) -> sql.SQL:
    """The `agg_funnel_daily` column of a step (step names are checked in `settings.py`)."""
    return sql.SQL(step + "_sessions")


def funnel_steps(conn, start: date, end: date, devices=None, sources=None) -> QueryResult:
    """Sessions reaching each funnel step, with step-to-step conversion, drop-off and overall
    conversion (from the first step), from `agg_funnel_daily`."""
    steps = settings(conn).steps
    segment, params = segment_filter(devices, sources, indent=14)
    sums = sql.SQL(",\n                   ").join(
        sql.SQL("coalesce(sum({}), 0)::bigint as {}").format(_sessions(step), sql.SQL(step)) for step in steps
    )
    rows = sql.SQL(",\n                ").join(
        sql.SQL("({}, {}, totals.{})").format(sql.Literal(n), sql.Literal(step), sql.SQL(step))
        for n, step in enumerate(steps, 1)
    )
    query = _q(
        """
        with totals as (
            select {sums}
            from analytics.agg_funnel_daily
            where session_date between %(start)s and %(end)s""",
        segment,
        """
        ),
        steps as (
            select s.step_order, s.step, s.sessions
            from totals
            cross join lateral (values
                {rows}
            ) as s (step_order, step, sessions)
        )
        select step_order,
               step,
               sessions,
               round(100.0 * sessions / nullif(lag(sessions) over (order by step_order), 0), 1)
                   as step_conversion_pct,
               round(100.0 - 100.0 * sessions / nullif(lag(sessions) over (order by step_order), 0), 1)
                   as drop_off_pct,
               round(100.0 * sessions / nullif(first_value(sessions) over (order by step_order), 0), 1)
                   as overall_conversion_pct
        from steps
        order by step_order
        """,
        sums=sums,
        rows=rows,
    )
    return run(conn, "funnel_steps", query, period(start, end, params))


def funnel_breakdown(conn, start: date, end: date, dimension: str, devices=None, sources=None) -> QueryResult:
    """The funnel per device, traffic source or week, side by side."""
    expr = _whitelisted(FUNNEL_BREAKDOWNS, dimension, "breakdown")
    steps = settings(conn).steps
    segment, params = segment_filter(devices, sources)
    per_step = sql.Composed(
        [
            sql.SQL("\n               sum({})::bigint as {},").format(_sessions(step), sql.SQL(step))
            for step in steps
        ]
    )
    query = _q(
        """
        select {expr} as breakdown,
               sum(sessions)::bigint as sessions,{per_step}
               round(100.0 * sum(add_to_cart_sessions) / nullif(sum(product_view_sessions), 0), 1)
                   as cart_rate_pct,
               round(100.0 * sum(purchase_sessions) / nullif(sum(checkout_start_sessions), 0), 1)
                   as checkout_completion_pct,
               round(100.0 * sum(purchase_sessions) / nullif(sum(page_view_sessions), 0), 1)
                   as overall_conversion_pct
        from analytics.agg_funnel_daily
        where session_date between %(start)s and %(end)s""",
        segment,
        """
        group by 1
        order by 1
        """,
        expr=expr,
        per_step=per_step,
    )
    return run(conn, "funnel_breakdown", query, period(start, end, params))


def funnel_time_to_convert(conn, start: date, end: date, devices=None, sources=None) -> QueryResult:
    """Median (and quartiles of) time from first page view to purchase, and how many sessions
    that viewed a product reached checkout, from `agg_time_to_purchase_daily` (exact
    seconds_to_purchase values with their session counts). The quartiles are
    `percentile_cont`'s, computed over the weighted rows: the value at rank floor(pos) plus the
    fraction of the way to the value at rank ceil(pos), pos = 1 + q * (n - 1)."""
    segment, params = segment_filter(devices, sources, indent=14)
    query = _q(
        """
        with filtered as (
            select seconds_to_purchase, purchase_sessions, product_view_sessions,
                   product_view_to_checkout_sessions
            from analytics.agg_time_to_purchase_daily
            where session_date between %(start)s and %(end)s""",
        segment,
        """
        ),
        totals as (
            select coalesce(sum(purchase_sessions), 0)::bigint as purchasing_sessions,
                   coalesce(sum(product_view_sessions), 0)::bigint as product_view_sessions,
                   coalesce(sum(product_view_to_checkout_sessions), 0)::bigint
                       as product_view_to_checkout_sessions,
                   coalesce(sum(purchase_sessions) filter (where seconds_to_purchase is not null), 0)
                       as timed_sessions
            from filtered
        ),
        ranked as (
            select seconds_to_purchase as seconds,
                   sum(sum(purchase_sessions)) over (order by seconds_to_purchase) as up_to
            from filtered
            where seconds_to_purchase is not null and purchase_sessions > 0
            group by seconds_to_purchase
        ),
        positions as (
            select q.quantile, 1 + q.quantile * (totals.timed_sessions - 1) as pos
            from totals
            cross join (values (0.25::float8), (0.5::float8), (0.75::float8)) as q (quantile)
            where totals.timed_sessions > 0
        ),
        quantiles as (
            select positions.quantile,
                   lo.seconds::float8
                       + (hi.seconds::float8 - lo.seconds::float8) * (positions.pos - floor(positions.pos))
                       as seconds
            from positions
            cross join lateral (
                select ranked.seconds from ranked where ranked.up_to >= floor(positions.pos)
                order by ranked.seconds limit 1
            ) as lo
            cross join lateral (
                select ranked.seconds from ranked where ranked.up_to >= ceil(positions.pos)
                order by ranked.seconds limit 1
            ) as hi
        )
        select totals.purchasing_sessions,
               (select seconds from quantiles where quantile = 0.5) as median_seconds_to_purchase,
               (select seconds from quantiles where quantile = 0.25) as p25_seconds_to_purchase,
               (select seconds from quantiles where quantile = 0.75) as p75_seconds_to_purchase,
               totals.product_view_sessions,
               totals.product_view_to_checkout_sessions
        from totals
        """,
    )
    return run(conn, "funnel_time_to_convert", query, period(start, end, params))


# --- the funnel builder: analytics.funnel(spec jsonb) and the saved funnels ----------------------


def custom_funnel(conn, spec: dict) -> QueryResult:
    """The builder's funnel: `analytics.funnel(spec)`, the spec bound as one jsonb parameter
    (never spliced into the SQL). Its *Show SQL* is the call to paste into psql. A spec the
    function refuses (SQLSTATE 22023, a message naming what is wrong) raises `Refused`."""
    query = "select * from analytics.funnel(%(spec)s::jsonb)"
    params = {"spec": json.dumps(spec, ensure_ascii=False)}
    try:
        return run(conn, "custom_funnel", query, params)
    except psycopg2.errors.InvalidParameterValue as exc:
        with conn.cursor() as cur:
            shown = _tidy(cur.mogrify(query, params).decode())
        raise Refused(exc.diag.message_primary or "the funnel is not valid", shown) from exc


def saved_funnels(conn) -> QueryResult:
    """Every saved funnel, by name."""
    return run(
        conn,
        "saved_funnels",
        """
        select name, spec, saved_at, saved_by
        from analytics.saved_funnels
        order by lower(name), name
        """,
        {},
    )


def save_funnel(conn, name: str, spec: dict, overwrite: bool = False) -> QueryResult:
    """Save a funnel under `name` in a read-write transaction (the dashboards' sessions are
    read-only by default). An existing name is replaced only with `overwrite`; otherwise the
    result has no row (and nothing changed)."""
    conflict = (
        "do update set spec = excluded.spec, saved_at = now(), saved_by = current_user"
        if overwrite
        else "do nothing"
    )
    query = _q(
        """
        insert into analytics.saved_funnels (name, spec)
        values (%(name)s, %(spec)s::jsonb)
        on conflict (name) {conflict}
        returning name, saved_at, saved_by
        """,
        conflict=sql.SQL(conflict),
    )
    with conn.cursor() as cur:
        cur.execute("begin read write")
    try:
        result = run(conn, "save_funnel", query, {"name": name, "spec": json.dumps(spec, ensure_ascii=False)})
    except BaseException:
        with conn.cursor() as cur:
            cur.execute("rollback")
        raise
    with conn.cursor() as cur:
        cur.execute("commit")
    return result
