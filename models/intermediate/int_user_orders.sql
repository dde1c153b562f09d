{#- One row per order and user_key of its purchase events: the order's revenue (the largest
    sent with it). What dim_users counts and sums per user. Incremental: the orders with a
    purchase event written or restated in fact_events since the last run are recomputed; a
    pre-hook deletes their rows first, and the new rows are appended (both engines). -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ delete_recomputed_keys('order_id', user_orders_touched()) }}",
        indexes=[
            {'columns': ['order_id']},
            {'columns': ['user_key']},
            {'columns': ['dbt_updated_at']},
        ],
    )
}}

with

purchases as (
    select
        order_id,
        user_key,
        order_revenue
    from {{ ref('fact_events') }}
    where
        event_name = 'purchase'
        and order_id is not null
        and {{ when_incremental(in_short_list('order_id', user_orders_touched())) }}
),

final as (
    select
        purchases.order_id,
        purchases.user_key,
        max(purchases.order_revenue) as order_revenue,
        {{ run_timestamp() }} as dbt_updated_at
    from purchases
    group by 1, 2
)

select * from final
