{#- One row per UTC date and product: agg_product_daily summed over device types and traffic
    sources, for the questions that do not split by them (the Products page, top products
    without a device or source filter): about 20 times fewer rows to read. orders add up
    exactly: an order has one device type and traffic source (those of its purchase event).
    Incremental: dates rewritten in agg_product_daily since the last run are recomputed whole. -#}

{{ config(**replace_by_key_on_spark('event_date')) }}

with

product_days as (
    select
        event_date,
        product_id,
        views,
        add_to_carts,
        purchases,
        orders,
        revenue,
        dbt_updated_at
    from {{ ref('agg_product_daily') }}
),

{{ touched_keys('touched_dates', ref('agg_product_daily'), 'event_date') }}

final as (
    select
        product_days.event_date,
        product_days.product_id,
        cast(sum(product_days.views) as bigint) as views,
        cast(sum(product_days.add_to_carts) as bigint) as add_to_carts,
        cast(sum(product_days.purchases) as bigint) as purchases,
        cast(sum(product_days.orders) as bigint) as orders,
        sum(product_days.revenue) as revenue,
        {{ run_timestamp() }} as dbt_updated_at
    from product_days
    where {{ in_touched_keys('touched_dates', 'product_days.event_date') }}
    group by 1, 2
)

select * from final
