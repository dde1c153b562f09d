{#- One row per product mention in a valid event: the event's product, and every item of an
    order. Feeds dim_products; a view, so dim_products' incremental filter reaches the raw index. -#}
{{ config(materialized='view') }}

with

staged_events as (
    select
        event_id,
        event_at,
        loaded_at,
        is_bot,
        product_id,
        product_name,
        product_category,
        product_brand,
        product_price,
        order_items
    from {{ ref('stg_clickstream__events') }}
    where is_valid
),

event_products as (
    select
        staged_events.product_id,
        staged_events.product_name,
        staged_events.product_category,
        staged_events.product_brand,
        staged_events.product_price,
        staged_events.event_at,
        staged_events.loaded_at,
        staged_events.is_bot
    from staged_events
    where staged_events.product_id is not null
),

order_item_products as (
    select
        {{ json_string('order_item.value', ['product_id']) }} as product_id,
        {{ json_string('order_item.value', ['name']) }} as product_name,
        {{ json_string('order_item.value', ['category']) }} as product_category,
        {{ json_string('order_item.value', ['brand']) }} as product_brand,
        {{ json_number('order_item.value', ['price']) }} as product_price,
        staged_events.event_at,
        staged_events.loaded_at,
        staged_events.is_bot
    from staged_events
    cross join lateral {{ json_array_rows('staged_events.order_items') }} as order_item (value)
    where staged_events.order_items is not null
),

final as (
    select * from event_products
    union all
    select * from order_item_products
    where order_item_products.product_id is not null
)

select * from final
