{#- One row per product mention in a valid event: the event's product, and every item of an
    order. Feeds dim_products; a view, so dim_products' incremental filter reaches the raw index. -#}
{{ config(materialized=view_materialization()) }}

with

event_products as (
    select
        product_id,
        product_name,
        product_category,
        product_brand,
        product_price,
        event_at,
        loaded_at,
        is_bot
    from {{ ref('stg_clickstream__events') }}
    where is_valid and product_id is not null
),

purchase_events as (
    select
        event_at,
        loaded_at,
        is_bot,
        order_items
    from {{ ref('stg_clickstream__events') }}
    where is_valid and order_items is not null
),

order_item_products as (
    select
        {{ json_string('order_item.value', ['product_id']) }} as product_id,
        {{ json_string('order_item.value', ['name']) }} as product_name,
        {{ json_string('order_item.value', ['category']) }} as product_category,
        {{ json_string('order_item.value', ['brand']) }} as product_brand,
        {{ json_number('order_item.value', ['price']) }} as product_price,
        purchase_events.event_at,
        purchase_events.loaded_at,
        purchase_events.is_bot
    from purchase_events
    {{ json_array_join('purchase_events.order_items', 'order_item') }}
),

final as (
    select * from event_products
    union all
    select * from order_item_products
    where order_item_products.product_id is not null
)

select * from final
