{#- One row per UTC date, product, device type and traffic source: product views and adds to
    cart (fact_events), units purchased, orders and revenue (fact_order_items). Incremental:
    dates with events or purchases inserted since the last run are recomputed whole
    (delete+insert on event_date); a restatement changes no column counted here. -#}

{{ config(**replace_by_key_on_spark('event_date')) }}

with

events as (
    select
        event_name,
        event_date,
        product_id,
        device_type,
        traffic_source,
        dbt_updated_at
    from {{ ref('fact_events') }}
    where product_id is not null
),

order_items as (
    select
        order_id,
        product_id,
        quantity,
        item_revenue,
        ordered_date,
        device_type,
        traffic_source,
        dbt_updated_at
    from {{ ref('fact_order_items') }}
),

{{ touched_keys(
    'touched_dates',
    [ref('fact_events'), ref('fact_order_items')],
    {'event_date': ['event_date', 'ordered_date']},
    changed_column='inserted_at',
) }}

event_counts as (
    select
        events.event_date,
        events.product_id,
        events.device_type,
        events.traffic_source,
        sum(case when events.event_name = 'product_view' then 1 else 0 end) as views,
        sum(case when events.event_name = 'add_to_cart' then 1 else 0 end) as add_to_carts
    from events
    where
        events.event_name in ('product_view', 'add_to_cart')
        and {{ in_touched_keys('touched_dates', 'events.event_date') }}
    group by 1, 2, 3, 4
),

purchase_counts as (
    select
        order_items.ordered_date as event_date,
        order_items.product_id,
        order_items.device_type,
        order_items.traffic_source,
        sum(order_items.quantity) as purchases,
        count(distinct order_items.order_id) as orders,
        sum(order_items.item_revenue) as revenue
    from order_items
    where {{ in_touched_keys('touched_dates', {'order_items.ordered_date': 'event_date'}) }}
    group by 1, 2, 3, 4
),

final as (
    select
        coalesce(event_counts.event_date, purchase_counts.event_date) as event_date,
        coalesce(event_counts.product_id, purchase_counts.product_id) as product_id,
        coalesce(event_counts.device_type, purchase_counts.device_type) as device_type,
        coalesce(event_counts.traffic_source, purchase_counts.traffic_source) as traffic_source,
        cast(coalesce(event_counts.views, 0) as bigint) as views,
        cast(coalesce(event_counts.add_to_carts, 0) as bigint) as add_to_carts,
        cast(coalesce(purchase_counts.purchases, 0) as bigint) as purchases,
        cast(coalesce(purchase_counts.orders, 0) as bigint) as orders,
        coalesce(purchase_counts.revenue, 0) as revenue,
        {{ run_timestamp() }} as dbt_updated_at
    from event_counts
    full outer join purchase_counts
        on
            event_counts.event_date = purchase_counts.event_date
            and event_counts.product_id = purchase_counts.product_id
            and event_counts.device_type = purchase_counts.device_type
            and event_counts.traffic_source = purchase_counts.traffic_source
)

select * from final
