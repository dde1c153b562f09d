{#- One row per purchased item: the items of each order's purchase event, with the item's price
    and quantity as sent (quantity 1 when missing). Incremental: orders whose purchase event was
    written or restated in fact_events since the last run are rewritten whole. inserted_at is
    the newest inserted_at of the order's purchase events: a restated order (a stitched user)
    keeps it, so agg_product_daily follows new purchases alone. -#}

{{ config(**merge_key_on_spark(['order_id', 'item_number'])) }}

with

purchase_events as (
    select
        event_id,
        order_id,
        order_items,
        event_at,
        session_id,
        user_key,
        device_type,
        traffic_source,
        inserted_at
    from {{ ref('fact_events') }}
    where
        event_name = 'purchase'
        and order_id is not null
        and {{ when_incremental('dbt_updated_at > ' ~ run_watermark()) }}
),

first_purchase_per_order as (
    select
        purchase_events.*,
        row_number() over (
            partition by purchase_events.order_id
            order by purchase_events.event_at, purchase_events.event_id
        ) as purchase_number,
        max(purchase_events.inserted_at) over (partition by purchase_events.order_id) as order_inserted_at
    from purchase_events
),

order_items_unnested as (
    select
        first_purchase_per_order.order_id,
        first_purchase_per_order.event_id,
        first_purchase_per_order.event_at,
        first_purchase_per_order.session_id,
        first_purchase_per_order.user_key,
        first_purchase_per_order.device_type,
        first_purchase_per_order.traffic_source,
        first_purchase_per_order.order_inserted_at as inserted_at,
        order_item.value as order_item,
        order_item.item_number
    from first_purchase_per_order
    {{ json_array_join('first_purchase_per_order.order_items', 'order_item', with_ordinality=true) }}
    where first_purchase_per_order.purchase_number = 1
),

typed_items as (
    select
        order_items_unnested.order_id,
        cast(order_items_unnested.item_number as integer) as item_number,
        {{ json_string('order_items_unnested.order_item', ['product_id']) }} as product_id,
        coalesce({{ json_integer('order_items_unnested.order_item', ['quantity']) }}, 1) as quantity,
        {{ json_number('order_items_unnested.order_item', ['price']) }} as price,
        order_items_unnested.event_at as ordered_at,
        order_items_unnested.session_id,
        order_items_unnested.user_key,
        order_items_unnested.device_type,
        order_items_unnested.traffic_source,
        order_items_unnested.event_id,
        order_items_unnested.inserted_at
    from order_items_unnested
),

final as (
    select
        typed_items.order_id || '-' || cast(typed_items.item_number as {{ type_text() }}) as order_item_id,
        typed_items.order_id,
        typed_items.item_number,
        typed_items.product_id,
        typed_items.quantity,
        typed_items.price,
        typed_items.price * typed_items.quantity as item_revenue,
        typed_items.ordered_at,
        {{ utc_date('typed_items.ordered_at') }} as ordered_date,
        typed_items.session_id,
        typed_items.user_key,
        typed_items.device_type,
        typed_items.traffic_source,
        typed_items.event_id,
        typed_items.inserted_at,
        {{ run_timestamp() }} as dbt_updated_at
    from typed_items
    where typed_items.product_id is not null
)

select * from final
