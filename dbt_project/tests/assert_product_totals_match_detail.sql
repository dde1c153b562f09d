{#- agg_product_daily_totals must be agg_product_daily summed over device types and traffic
    sources, row for row: any date or product where they differ is returned. -#}
{{ config(tags=["full_scan"]) }}

with

detail as (
    select
        event_date,
        product_id,
        sum(views) as views,
        sum(add_to_carts) as add_to_carts,
        sum(purchases) as purchases,
        sum(orders) as orders,
        sum(revenue) as revenue
    from {{ ref('agg_product_daily') }}
    group by 1, 2
),

totals as (
    select
        event_date,
        product_id,
        views,
        add_to_carts,
        purchases,
        orders,
        revenue
    from {{ ref('agg_product_daily_totals') }}
),

differences as (
    select
        coalesce(detail.event_date, totals.event_date) as event_date,
        coalesce(detail.product_id, totals.product_id) as product_id
    from detail
    full outer join totals
        on
            detail.event_date = totals.event_date
            and detail.product_id = totals.product_id
    where
        detail.product_id is null
        or totals.product_id is null
        or detail.views != totals.views
        or detail.add_to_carts != totals.add_to_carts
        or detail.purchases != totals.purchases
        or detail.orders != totals.orders
        or detail.revenue != totals.revenue
)

select * from differences
