"""Start-up queries: the date bounds and the filters' choices (see `filters.py`)."""

from __future__ import annotations

from .base import QueryResult, run


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
