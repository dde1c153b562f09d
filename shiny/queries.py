"""Every SQL query the dashboards run, in one place.

Each query is a named function that takes a connection and plain Python values and
returns a `QueryResult`: the rows as a DataFrame plus the exact SQL that ran, with its
parameter values inlined by psycopg2's `cursor.mogrify`, ready to paste into psql.

User input only ever reaches the database as bound parameters. The few identifiers a
user can choose (a breakdown dimension, a ranking metric) are looked up in fixed
whitelists below; anything else raises `ValueError`.

The dashboards read only the marts in schema `analytics`, connected as the read-only
role (`DASHBOARD_PGUSER`, default `clickstream_reader`).
"""

from __future__ import annotations

import logging
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import pandas as pd
import psycopg2
import psycopg2.pool
from psycopg2 import sql

log = logging.getLogger("dashboards.queries")

FUNNEL_STEPS = [
    ("page_view", "Page view"),
    ("product_view", "Product view"),
    ("add_to_cart", "Add to cart"),
    ("checkout_start", "Checkout"),
    ("purchase", "Purchase"),
]
TIME_SERIES_EVENTS = ["page_view", "product_view", "add_to_cart", "purchase"]

# breakdown dimensions a user may pick: key -> SQL expression (fixed text, never user input)
FUNNEL_BREAKDOWNS = {
    "device_type": "device_type",
    "traffic_source": "traffic_source",
    "week": "date_trunc('week', session_date)::date::text",
}
ACTIVITY_BREAKDOWNS = {"device_type": "device_type", "traffic_source": "traffic_source"}
PRODUCT_ROLLUPS = {"product_category": "p.product_category", "product_brand": "p.product_brand"}
PRODUCT_RANKINGS = {
    "views": "views",
    "add_to_carts": "add_to_carts",
    "purchases": "purchases",
    "revenue": "revenue",
    "purchase_rate": "purchase_rate",
}

# source freshness thresholds (minutes since the newest load), as in the dbt sources
FRESH_WARN_MINUTES = 120
FRESH_ERROR_MINUTES = 6 * 60


class DatabaseUnavailable(RuntimeError):
    """The warehouse could not be reached (or the connection broke)."""


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


# --- connections -------------------------------------------------------------------------------


def connection_params() -> dict[str, str]:
    """libpq settings of the read-only dashboard role, from the environment."""
    return {
        "host": os.environ.get("PGHOST", "127.0.0.1"),
        "port": os.environ.get("PGPORT", "5432"),
        "dbname": os.environ.get("PGDATABASE", "clickstream"),
        "user": os.environ.get("DASHBOARD_PGUSER", "clickstream_reader"),
        "password": os.environ.get("DASHBOARD_PGPASSWORD", "clickstream_reader"),
        "connect_timeout": os.environ.get("DASHBOARD_CONNECT_TIMEOUT", "3"),
        "application_name": "clickstream-dashboards",
        "options": "-c statement_timeout={}".format(
            os.environ.get("DASHBOARD_STATEMENT_TIMEOUT_MS", "30000")
        ),
    }


class Pool:
    """A small thread-safe psycopg2 pool that opens connections lazily (so the app starts
    while the database is down) and drops broken connections (so it recovers by itself)."""

    def __init__(self, maxconn: int = 4, wait_seconds: float = 30.0):
        self._maxconn = maxconn
        self._pool: psycopg2.pool.ThreadedConnectionPool | None = None
        self._lock = threading.Lock()
        # psycopg2's pool raises when every connection is taken; callers wait for one instead
        self._slots = threading.BoundedSemaphore(maxconn)
        self._wait_seconds = wait_seconds

    def _get_pool(self) -> psycopg2.pool.ThreadedConnectionPool:
        with self._lock:
            if self._pool is None:
                self._pool = psycopg2.pool.ThreadedConnectionPool(0, self._maxconn, **connection_params())
            return self._pool

    @contextmanager
    def connection(self):
        if not self._slots.acquire(timeout=self._wait_seconds):
            raise DatabaseUnavailable(f"no free database connection within {self._wait_seconds:g} s")
        try:
            pool = self._get_pool()
            try:
                conn = pool.getconn()
            except psycopg2.OperationalError as exc:
                raise DatabaseUnavailable(str(exc).strip()) from exc
            except psycopg2.pool.PoolError as exc:
                raise DatabaseUnavailable(f"connection pool exhausted: {exc}") from exc
            broken = False
            try:
                if conn.autocommit is False:
                    conn.set_session(readonly=True, autocommit=True)
                yield conn
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
                broken = True
                raise DatabaseUnavailable(str(exc).strip()) from exc
            finally:
                pool.putconn(conn, close=broken or bool(conn.closed))
        finally:
            self._slots.release()

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.closeall()
                self._pool = None


POOL_SIZE = int(os.environ.get("DASHBOARD_POOL_SIZE", "4"))
POOL = Pool(maxconn=POOL_SIZE)


# --- running a query ---------------------------------------------------------------------------


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
    log.debug("query ran", extra={"query": name, "rows": len(rows)})
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


def _common(start: date, end: date, devices=None, sources=None) -> dict:
    return {
        "start": start,
        "end": end,
        "devices": _list_or_none(devices),
        "sources": _list_or_none(sources),
    }


# --- start-up: date bounds and filter choices -------------------------------------------------


def date_bounds(conn) -> QueryResult:
    """Oldest and newest event date in the warehouse (the default date range ends at the newest)."""
    return run(
        conn,
        "date_bounds",
        """
        select min(event_date) as min_date, max(event_date) as max_date
        from analytics.agg_events_hourly
        """,
        {},
    )


def filter_choices(conn) -> QueryResult:
    """Distinct values for the filter inputs: one row per (kind, value). One pass over
    agg_events_hourly (its combinations first, then unnested), one over dim_products."""
    return run(
        conn,
        "filter_choices",
        """
        with combinations as (
            select event_name, device_type, traffic_source
            from analytics.agg_events_hourly
            group by 1, 2, 3
        ),
        choices as (
            select distinct c.kind, c.value
            from combinations
            cross join lateral (values
                ('event_name', combinations.event_name),
                ('device_type', combinations.device_type),
                ('traffic_source', combinations.traffic_source)
            ) as c (kind, value)
            union all
            select distinct c.kind, c.value
            from analytics.dim_products
            cross join lateral (values
                ('product_category', dim_products.product_category),
                ('product_brand', dim_products.product_brand)
            ) as c (kind, value)
        )
        select kind, value from choices order by 1, 2
        """,
        {},
    )


def price_bounds(conn) -> QueryResult:
    return run(
        conn,
        "price_bounds",
        """
        select coalesce(floor(min(product_price)), 0)::int as min_price,
               coalesce(ceil(max(product_price)), 0)::int as max_price
        from analytics.dim_products
        """,
        {},
    )


# --- data health (every page) ------------------------------------------------------------------


def data_health(conn) -> QueryResult:
    """Newest load, its lag, events loaded in the last 24 hours, quarantined events, the
    freshness status, and whether the marts are behind the raw data (a load committed after
    the last successful build started). Uses `analytics.load_health` (one row per loader run) when the dbt
    project provides it; otherwise falls back to what the marts show."""
    with conn.cursor() as cur:
        cur.execute("select to_regclass('analytics.load_health') is not null")
        has_load_health = cur.fetchone()[0]
    params = {"warn": FRESH_WARN_MINUTES, "error": FRESH_ERROR_MINUTES}
    if has_load_health:
        query = """
        with runs as (
            select max(finished_at) filter (where status = 'succeeded') as last_load_at,
                   coalesce(sum(events) filter (where finished_at >= now() - interval '24 hours'), 0)::bigint
                       as events_last_24h,
                   coalesce(sum(rejects), 0)::bigint as rejected_lines,
                   count(*) filter (where status = 'failed' and finished_at >= now() - interval '24 hours')
                       as failed_runs_24h,
                   max(last_loaded_at) filter (where events > 0) as raw_loaded_at,
                   max(dbt_started_at) filter (where dbt_status = 'success') as marts_data_at,
                   max(dbt_finished_at) filter (where dbt_status = 'success') as marts_built_at
            from analytics.load_health
        ),
        quarantine as (select count(*)::bigint as quarantined_events from analytics.rejected_events)
        select runs.last_load_at,
               round(extract(epoch from now() - runs.last_load_at) / 60)::int as lag_minutes,
               runs.events_last_24h,
               runs.rejected_lines,
               quarantine.quarantined_events,
               runs.failed_runs_24h,
               runs.raw_loaded_at,
               runs.marts_built_at,
               -- a load committed after the last good build started is not in the marts yet
               coalesce(runs.raw_loaded_at > coalesce(runs.marts_data_at, '-infinity'), false)
                   as marts_behind,
               case
                   when runs.last_load_at is null then 'no data'
                   when now() - runs.last_load_at > make_interval(mins => %(error)s) then 'error'
                   when now() - runs.last_load_at > make_interval(mins => %(warn)s) then 'warn'
                   else 'fresh'
               end as freshness
        from runs cross join quarantine
        """
    else:
        query = """
        with newest as (select max(loaded_at) as last_load_at from analytics.fact_events),
        recent as (
            select count(*)::bigint as events_last_24h
            from analytics.fact_events
            where loaded_at >= now() - interval '24 hours'
        ),
        quarantine as (select count(*)::bigint as quarantined_events from analytics.rejected_events)
        select newest.last_load_at,
               round(extract(epoch from now() - newest.last_load_at) / 60)::int as lag_minutes,
               recent.events_last_24h,
               null::bigint as rejected_lines,
               quarantine.quarantined_events,
               null::bigint as failed_runs_24h,
               null::timestamptz as raw_loaded_at,
               null::timestamptz as marts_built_at,
               false as marts_behind,
               case
                   when newest.last_load_at is null then 'no data'
                   when now() - newest.last_load_at > make_interval(mins => %(error)s) then 'error'
                   when now() - newest.last_load_at > make_interval(mins => %(warn)s) then 'warn'
                   else 'fresh'
               end as freshness
        from newest cross join recent cross join quarantine
        """
    return run(conn, "data_health", query, params)


# --- overview and funnel -----------------------------------------------------------------------


def funnel_steps(conn, start: date, end: date, devices=None, sources=None) -> QueryResult:
    """Sessions reaching each funnel step, with step-to-step conversion, drop-off and overall
    conversion (from page view), from `agg_funnel_daily`."""
    return run(
        conn,
        "funnel_steps",
        """
        with totals as (
            select coalesce(sum(page_view_sessions), 0)::bigint as page_view,
                   coalesce(sum(product_view_sessions), 0)::bigint as product_view,
                   coalesce(sum(add_to_cart_sessions), 0)::bigint as add_to_cart,
                   coalesce(sum(checkout_start_sessions), 0)::bigint as checkout_start,
                   coalesce(sum(purchase_sessions), 0)::bigint as purchase
            from analytics.agg_funnel_daily
            where session_date between %(start)s and %(end)s
              and (%(devices)s::text[] is null or device_type = any(%(devices)s::text[]))
              and (%(sources)s::text[] is null or traffic_source = any(%(sources)s::text[]))
        ),
        steps as (
            select s.step_order, s.step, s.sessions
            from totals
            cross join lateral (values
                (1, 'page_view', totals.page_view),
                (2, 'product_view', totals.product_view),
                (3, 'add_to_cart', totals.add_to_cart),
                (4, 'checkout_start', totals.checkout_start),
                (5, 'purchase', totals.purchase)
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
        _common(start, end, devices, sources),
    )


def funnel_breakdown(conn, start: date, end: date, dimension: str, devices=None, sources=None) -> QueryResult:
    """The funnel per device, traffic source or week, side by side."""
    expr = _whitelisted(FUNNEL_BREAKDOWNS, dimension, "breakdown")
    query = sql.SQL(
        """
        select {expr} as breakdown,
               sum(sessions)::bigint as sessions,
               sum(page_view_sessions)::bigint as page_view,
               sum(product_view_sessions)::bigint as product_view,
               sum(add_to_cart_sessions)::bigint as add_to_cart,
               sum(checkout_start_sessions)::bigint as checkout_start,
               sum(purchase_sessions)::bigint as purchase,
               round(100.0 * sum(add_to_cart_sessions) / nullif(sum(product_view_sessions), 0), 1)
                   as cart_rate_pct,
               round(100.0 * sum(purchase_sessions) / nullif(sum(checkout_start_sessions), 0), 1)
                   as checkout_completion_pct,
               round(100.0 * sum(purchase_sessions) / nullif(sum(page_view_sessions), 0), 1)
                   as overall_conversion_pct
        from analytics.agg_funnel_daily
        where session_date between %(start)s and %(end)s
          and (%(devices)s::text[] is null or device_type = any(%(devices)s::text[]))
          and (%(sources)s::text[] is null or traffic_source = any(%(sources)s::text[]))
        group by 1
        order by 1
        """
    ).format(expr=expr)
    return run(conn, "funnel_breakdown", query, _common(start, end, devices, sources))


def funnel_time_to_convert(conn, start: date, end: date, devices=None, sources=None) -> QueryResult:
    """Median (and quartiles of) time from first page view to purchase, and how many sessions
    that viewed a product reached checkout, from `agg_time_to_purchase_daily` (exact
    seconds_to_purchase values with their session counts). The quartiles are
    `percentile_cont`'s, computed over the weighted rows: the value at rank floor(pos) plus the
    fraction of the way to the value at rank ceil(pos), pos = 1 + q * (n - 1)."""
    return run(
        conn,
        "funnel_time_to_convert",
        """
        with filtered as (
            select seconds_to_purchase, purchase_sessions, product_view_sessions,
                   product_view_to_checkout_sessions
            from analytics.agg_time_to_purchase_daily
            where session_date between %(start)s and %(end)s
              and (%(devices)s::text[] is null or device_type = any(%(devices)s::text[]))
              and (%(sources)s::text[] is null or traffic_source = any(%(sources)s::text[]))
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
        _common(start, end, devices, sources),
    )


def events_per_day(conn, start: date, end: date, event_names=None, devices=None, sources=None) -> QueryResult:
    """Events per UTC day and event type, from `agg_events_hourly`."""
    params = _common(start, end, devices, sources)
    params["event_names"] = _list_or_none(event_names)
    return run(
        conn,
        "events_per_day",
        """
        select event_date, event_name, sum(events)::bigint as events
        from analytics.agg_events_hourly
        where event_date between %(start)s and %(end)s
          and (%(event_names)s::text[] is null or event_name = any(%(event_names)s::text[]))
          and (%(devices)s::text[] is null or device_type = any(%(devices)s::text[]))
          and (%(sources)s::text[] is null or traffic_source = any(%(sources)s::text[]))
        group by 1, 2
        order by 1, 2
        """,
        params,
    )


# --- products ----------------------------------------------------------------------------------

_PRODUCT_FILTERS = sql.SQL(
    """
          and (%(categories)s::text[] is null or p.product_category = any(%(categories)s::text[]))
          and (%(brands)s::text[] is null or p.product_brand = any(%(brands)s::text[]))
          and (%(price_min)s::numeric is null or p.product_price >= %(price_min)s::numeric)
          and (%(price_max)s::numeric is null or p.product_price <= %(price_max)s::numeric)
"""
)


def _product_params(start, end, devices, sources, categories, brands, price_min, price_max) -> dict:
    params = _common(start, end, devices, sources)
    params.update(
        categories=_list_or_none(categories),
        brands=_list_or_none(brands),
        price_min=None if price_min is None else Decimal(str(price_min)),
        price_max=None if price_max is None else Decimal(str(price_max)),
    )
    return params


def _product_days(params: dict) -> sql.Composed:
    """FROM/WHERE over the daily product rows of the period. Without a device or source filter
    they come from `agg_product_daily_totals` (one row per date and product, about 20 times
    fewer rows); with one, from `agg_product_daily` (per device type and traffic source)."""
    if params["devices"] is None and params["sources"] is None:
        return sql.SQL(
            """from analytics.agg_product_daily_totals as a
            where a.event_date between %(start)s and %(end)s"""
        )
    return sql.SQL(
        """from analytics.agg_product_daily as a
            where a.event_date between %(start)s and %(end)s
              and (%(devices)s::text[] is null or a.device_type = any(%(devices)s::text[]))
              and (%(sources)s::text[] is null or a.traffic_source = any(%(sources)s::text[]))"""
    )


def product_performance(
    conn,
    start: date,
    end: date,
    rank_by: str = "views",
    devices=None,
    sources=None,
    categories=None,
    brands=None,
    price_min=None,
    price_max=None,
    limit: int = 50,
) -> QueryResult:
    """Products ranked by a metric, with add-to-cart and purchase conversion per view, and a
    flag for high attention but low conversion (views in the top quartile, purchases per view
    in the bottom quartile of the products with views)."""
    order = _whitelisted(PRODUCT_RANKINGS, rank_by, "ranking")
    params = _product_params(start, end, devices, sources, categories, brands, price_min, price_max)
    params["limit"] = int(limit)
    query = _q(
        """
        with per_product as (
            select a.product_id,
                   sum(a.views)::bigint as views,
                   sum(a.add_to_carts)::bigint as add_to_carts,
                   sum(a.purchases)::bigint as purchases,
                   sum(a.orders)::bigint as orders,
                   coalesce(sum(a.revenue), 0)::numeric(14, 2) as revenue
            {product_days}
            group by 1
        ),
        measured as (
            select p.product_id,
                   p.product_name,
                   p.product_category,
                   p.product_brand,
                   p.product_price,
                   m.views,
                   m.add_to_carts,
                   m.purchases,
                   m.orders,
                   m.revenue,
                   round(100.0 * m.add_to_carts / nullif(m.views, 0), 1) as cart_rate_pct,
                   round(100.0 * m.purchases / nullif(m.views, 0), 1) as purchase_rate_pct,
                   m.purchases::numeric / nullif(m.views, 0) as purchase_rate
            from per_product as m
            inner join analytics.dim_products as p on p.product_id = m.product_id
            where true
        """,
        _PRODUCT_FILTERS,
        """
        ),
        thresholds as (
            select percentile_cont(0.75) within group (order by views) as views_p75,
                   percentile_cont(0.25) within group (order by purchase_rate) as rate_p25
            from measured
            where views > 0
        )
        select measured.product_id,
               measured.product_name,
               measured.product_category,
               measured.product_brand,
               measured.product_price,
               measured.views,
               measured.add_to_carts,
               measured.purchases,
               measured.orders,
               measured.revenue,
               measured.cart_rate_pct,
               measured.purchase_rate_pct,
               coalesce(measured.views >= thresholds.views_p75
                   and measured.purchase_rate <= thresholds.rate_p25, false) as is_high_attention_low_conversion
        from measured
        cross join thresholds
        order by measured.{order} desc nulls last, measured.product_id
        limit %(limit)s
        """,
        order=order,
        product_days=_product_days(params),
    )
    return run(conn, "product_performance", query, params)


def product_rollup(
    conn,
    start: date,
    end: date,
    dimension: str,
    devices=None,
    sources=None,
    categories=None,
    brands=None,
    price_min=None,
    price_max=None,
) -> QueryResult:
    """Views, add-to-carts, purchases and revenue per category or per brand. The daily rows are
    summed per product first (one hash aggregate, no join per row), then joined to the
    products and rolled up: `products` counts the products with activity in the period."""
    expr = _whitelisted(PRODUCT_ROLLUPS, dimension, "roll-up")
    params = _product_params(start, end, devices, sources, categories, brands, price_min, price_max)
    query = _q(
        """
        with per_product as (
            select a.product_id,
                   sum(a.views)::bigint as views,
                   sum(a.add_to_carts)::bigint as add_to_carts,
                   sum(a.purchases)::bigint as purchases,
                   sum(a.revenue) as revenue
            {product_days}
            group by 1
        )
        select {expr} as {label},
               count(*)::bigint as products,
               sum(m.views)::bigint as views,
               sum(m.add_to_carts)::bigint as add_to_carts,
               sum(m.purchases)::bigint as purchases,
               coalesce(sum(m.revenue), 0)::numeric(14, 2) as revenue,
               round(100.0 * sum(m.add_to_carts) / nullif(sum(m.views), 0), 1) as cart_rate_pct,
               round(100.0 * sum(m.purchases) / nullif(sum(m.views), 0), 1) as purchase_rate_pct
        from per_product as m
        inner join analytics.dim_products as p on p.product_id = m.product_id
        where true
        """,
        _PRODUCT_FILTERS,
        """
        group by 1
        order by revenue desc, 1
        """,
        expr=expr,
        label=sql.Identifier(dimension),
        product_days=_product_days(params),
    )
    return run(conn, f"product_rollup_{dimension}", query, params)


def rarely_viewed_products(
    conn,
    start: date,
    end: date,
    devices=None,
    sources=None,
    categories=None,
    brands=None,
    price_min=None,
    price_max=None,
    limit: int = 15,
) -> QueryResult:
    """The least-viewed products in the period, never-viewed ones included (promotion candidates)."""
    params = _product_params(start, end, devices, sources, categories, brands, price_min, price_max)
    params["limit"] = int(limit)
    return run(
        conn,
        "rarely_viewed_products",
        _q(
            """
        with per_product as (
            select a.product_id, sum(a.views)::bigint as views, sum(a.purchases)::bigint as purchases
            {product_days}
            group by 1
        )
        select p.product_id,
               p.product_name,
               p.product_category,
               p.product_brand,
               p.product_price,
               coalesce(m.views, 0)::bigint as views,
               coalesce(m.purchases, 0)::bigint as purchases
        from analytics.dim_products as p
        left join per_product as m on m.product_id = p.product_id
        where true
        """,
            _PRODUCT_FILTERS,
            """
        order by views, p.product_id
        limit %(limit)s
        """,
            product_days=_product_days(params),
        ),
        params,
    )


# --- activity ----------------------------------------------------------------------------------

_LOCAL_RANGE = sql.SQL(
    """
        where h.event_hour >= %(start)s::date::timestamp at time zone %(tz)s
          and h.event_hour < (%(end)s::date + 1)::timestamp at time zone %(tz)s
          and (%(event_names)s::text[] is null or h.event_name = any(%(event_names)s::text[]))
          and (%(devices)s::text[] is null or h.device_type = any(%(devices)s::text[]))
          and (%(sources)s::text[] is null or h.traffic_source = any(%(sources)s::text[]))
"""
)


def _activity_params(start, end, tz, event_names, devices, sources) -> dict:
    params = _common(start, end, devices, sources)
    params.update(tz=tz, event_names=_list_or_none(event_names))
    return params


def events_by_hour(
    conn, start: date, end: date, tz: str = "UTC", event_names=None, devices=None, sources=None
) -> QueryResult:
    """Events per hour and event type in the reporting time zone (dates are local dates)."""
    return run(
        conn,
        "events_by_hour",
        _q(
            """
        select h.event_hour at time zone %(tz)s as local_hour, h.event_name, sum(h.events)::bigint as events
        from analytics.agg_events_hourly as h
        """,
            _LOCAL_RANGE,
            """
        group by 1, 2
        order by 1, 2
        """,
        ),
        _activity_params(start, end, tz, event_names, devices, sources),
    )


def events_by_local_day(
    conn, start: date, end: date, tz: str = "UTC", event_names=None, devices=None, sources=None
) -> QueryResult:
    """Events per local day and event type in the reporting time zone."""
    return run(
        conn,
        "events_by_local_day",
        _q(
            """
        select (h.event_hour at time zone %(tz)s)::date as local_date, h.event_name, sum(h.events)::bigint as events
        from analytics.agg_events_hourly as h
        """,
            _LOCAL_RANGE,
            """
        group by 1, 2
        order by 1, 2
        """,
        ),
        _activity_params(start, end, tz, event_names, devices, sources),
    )


def hour_weekday_heatmap(
    conn, start: date, end: date, tz: str = "UTC", event_names=None, devices=None, sources=None
) -> QueryResult:
    """Events per local weekday (1 = Monday) and hour of day. The rows are summed per UTC hour
    first, so the time-zone conversion runs once per hour, not once per row."""
    return run(
        conn,
        "hour_weekday_heatmap",
        _q(
            """
        with per_hour as (
            select h.event_hour, sum(h.events) as events
            from analytics.agg_events_hourly as h
        """,
            _LOCAL_RANGE,
            """
            group by 1
        )
        select extract(isodow from per_hour.event_hour at time zone %(tz)s)::int as weekday,
               extract(hour from per_hour.event_hour at time zone %(tz)s)::int as hour,
               sum(per_hour.events)::bigint as events
        from per_hour
        group by 1, 2
        order by 1, 2
        """,
        ),
        _activity_params(start, end, tz, event_names, devices, sources),
    )


def activity_breakdown(
    conn,
    start: date,
    end: date,
    dimension: str,
    tz: str = "UTC",
    event_names=None,
    devices=None,
    sources=None,
) -> QueryResult:
    """Events per device type or traffic source and event type."""
    expr = _whitelisted(ACTIVITY_BREAKDOWNS, dimension, "breakdown")
    query = _q(
        """
        select h.{expr} as breakdown, h.event_name, sum(h.events)::bigint as events
        from analytics.agg_events_hourly as h
        """,
        _LOCAL_RANGE,
        """
        group by 1, 2
        order by 1, 2
        """,
        expr=expr,
    )
    return run(
        conn, "activity_breakdown", query, _activity_params(start, end, tz, event_names, devices, sources)
    )


def conversion_by_weekday(conn, start: date, end: date, devices=None, sources=None) -> QueryResult:
    """Sessions, purchasing sessions and conversion per weekday of the (UTC) session date."""
    return run(
        conn,
        "conversion_by_weekday",
        """
        select extract(isodow from session_date)::int as weekday,
               to_char(min(session_date), 'Dy') as day,
               sum(sessions)::bigint as sessions,
               sum(purchase_sessions)::bigint as purchase_sessions,
               round(100.0 * sum(purchase_sessions) / nullif(sum(sessions), 0), 2) as conversion_pct
        from analytics.agg_funnel_daily
        where session_date between %(start)s and %(end)s
          and (%(devices)s::text[] is null or device_type = any(%(devices)s::text[]))
          and (%(sources)s::text[] is null or traffic_source = any(%(sources)s::text[]))
        group by 1
        order by 1
        """,
        _common(start, end, devices, sources),
    )


def campaign_sessions_per_day(
    conn, start: date, end: date, devices=None, sources=None, top: int = 8
) -> QueryResult:
    """Sessions per day for the biggest campaigns (to line campaigns up with activity spikes)."""
    params = _common(start, end, devices, sources)
    params["top"] = int(top)
    return run(
        conn,
        "campaign_sessions_per_day",
        """
        with daily as (
            select session_date, coalesce(traffic_campaign, '(none)') as campaign, sum(sessions)::bigint as sessions
            from analytics.agg_campaign_daily
            where session_date between %(start)s and %(end)s
              and (%(devices)s::text[] is null or device_type = any(%(devices)s::text[]))
              and (%(sources)s::text[] is null or traffic_source = any(%(sources)s::text[]))
            group by 1, 2
        ),
        biggest as (
            select campaign from daily group by 1 order by sum(sessions) desc, 1 limit %(top)s
        )
        select daily.session_date, daily.campaign, daily.sessions
        from daily
        inner join biggest on biggest.campaign = daily.campaign
        order by 1, 2
        """,
        params,
    )


def ping(conn) -> bool:
    with conn.cursor() as cur:
        cur.execute("select 1")
        return cur.fetchone()[0] == 1
