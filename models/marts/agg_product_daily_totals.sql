{#- One row per UTC date and product: agg_product_daily summed over device types and traffic
    sources, for the questions that do not split by them (the Products page, top products
    without a device or source filter): about 20 times fewer rows to read. orders add up
    exactly: an order has one device type and traffic source (those of its purchase event).
    Incremental: dates rewritten in agg_product_daily since the last run are recomputed whole. -#}

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

{% if is_incremental() %}
    {#- read agg_product_daily directly: a second reference to product_days would materialise it whole #}
    touched_dates as (
        select distinct changed_days.event_date
        from {{ ref('agg_product_daily') }} as changed_days
        where changed_days.dbt_updated_at > {{ run_watermark() }}
    ),
{% endif %}

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
    {% if is_incremental() -%}
        where {{ in_subquery('product_days.event_date', 'select touched_dates.event_date from touched_dates') }}
    {%- endif %}
    group by 1, 2
)

select * from final
