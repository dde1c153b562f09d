"""The Products page's queries (and the Overview's top products), over
`agg_product_daily_totals` or, with a device or source filter, `agg_product_daily`, joined to
`dim_products` after summing per product."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from psycopg2 import sql

from .base import QueryResult, _list_or_none, _q, _whitelisted, period, run, segment_filter

PRODUCT_ROLLUPS = {"product_category": "p.product_category", "product_brand": "p.product_brand"}
PRODUCT_RANKINGS = {
    "views": "views",
    "add_to_carts": "add_to_carts",
    "purchases": "purchases",
    "revenue": "revenue",
    "purchase_rate": "purchase_rate",
}

_PRODUCT_FILTERS = sql.SQL(
    """
          and (%(categories)s::text[] is null or p.product_category = any(%(categories)s::text[]))
          and (%(brands)s::text[] is null or p.product_brand = any(%(brands)s::text[]))
          and (%(price_min)s::numeric is null or p.product_price >= %(price_min)s::numeric)
          and (%(price_max)s::numeric is null or p.product_price <= %(price_max)s::numeric)
"""
)


# Every product of the period with its measures (`measured`) and the quartiles that flag high
# attention with low conversion (`thresholds`): views in the top quartile, purchases per view
# in the bottom quartile of the products with views. `{product_days}` is `_product_days`.
_MEASURED_HEAD = """
        with per_product as (
            select a.product_id,
                   sum(a.views)::bigint as views,
                   sum(a.add_to_carts)::bigint as add_to_carts,
                   sum(a.purchases)::bigint as purchases,
                   sum(a.orders)::bigint as orders,
                   round(coalesce(sum(a.revenue), 0), 2) as revenue
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
"""
_MEASURED_TAIL = """
        ),
        thresholds as (
            select percentile_cont(0.75) within group (order by views) as views_p75,
                   percentile_cont(0.25) within group (order by purchase_rate) as rate_p25
            from measured
            where views > 0
        )
"""


def _product_params(start, end, devices, sources, categories, brands, price_min, price_max) -> dict:
    segment, params = segment_filter(devices, sources, alias="a", indent=14)
    params = period(start, end, params)
    params.update(
        categories=_list_or_none(categories),
        brands=_list_or_none(brands),
        price_min=None if price_min is None else Decimal(str(price_min)),
        price_max=None if price_max is None else Decimal(str(price_max)),
    )
    return params, segment


def _product_days(params: dict, segment: sql.SQL) -> sql.Composed:
    """FROM/WHERE over the daily product rows of the period. Without a device or source filter
    they come from `agg_product_daily_totals` (one row per date and product, about 20 times
    fewer rows); with one, from `agg_product_daily` (per device type and traffic source)."""
    if params["devices"] is None and params["sources"] is None:
        return sql.SQL(
            """from analytics.agg_product_daily_totals as a
            where a.event_date between %(start)s and %(end)s"""
        )
    return sql.Composed(
        [
            sql.SQL(
                """from analytics.agg_product_daily as a
            where a.event_date between %(start)s and %(end)s"""
            ),
            segment,
        ]
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
    params, segment = _product_params(start, end, devices, sources, categories, brands, price_min, price_max)
    params["limit"] = int(limit)
    query = _q(
        _MEASURED_HEAD,
        _PRODUCT_FILTERS,
        _MEASURED_TAIL,
        """
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
        product_days=_product_days(params, segment),
    )
    return run(conn, "product_performance", query, params)


def product_attention(
    conn,
    start: date,
    end: date,
    devices=None,
    sources=None,
    categories=None,
    brands=None,
    price_min=None,
    price_max=None,
    limit: int = 500,
) -> QueryResult:
    """Views against purchases per view of the most viewed products (the scatter of attention
    and conversion), with the quartiles behind the high-attention, low-conversion flag."""
    params, segment = _product_params(start, end, devices, sources, categories, brands, price_min, price_max)
    params["limit"] = int(limit)
    query = _q(
        _MEASURED_HEAD,
        _PRODUCT_FILTERS,
        _MEASURED_TAIL,
        """
        select measured.product_id,
               measured.product_name,
               measured.views,
               measured.purchases,
               (100 * measured.purchase_rate)::float8 as purchase_rate_pct,
               thresholds.views_p75::float8 as views_p75,
               (100 * thresholds.rate_p25)::float8 as rate_p25_pct,
               coalesce(measured.views >= thresholds.views_p75
                   and measured.purchase_rate <= thresholds.rate_p25, false) as is_high_attention_low_conversion
        from measured
        cross join thresholds
        where measured.views > 0
        order by measured.views desc, measured.product_id
        limit %(limit)s
        """,
        product_days=_product_days(params, segment),
    )
    return run(conn, "product_attention", query, params)


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
    params, segment = _product_params(start, end, devices, sources, categories, brands, price_min, price_max)
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
               round(coalesce(sum(m.revenue), 0), 2) as revenue,
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
        product_days=_product_days(params, segment),
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
    params, segment = _product_params(start, end, devices, sources, categories, brands, price_min, price_max)
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
            product_days=_product_days(params, segment),
        ),
        params,
    )
