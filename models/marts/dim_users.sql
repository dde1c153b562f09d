{#- One row per user_key: a registered user (user_id) or a guest (anonymous_id never seen
    with a user_id). Segment rule, first match wins: repeat_buyer (2+ orders), buyer (1 order),
    cart_abandoner (added to cart, never ordered), returning (2+ sessions), new. Incremental:
    users with events written or restated in fact_events since the last run are recomputed;
    the pre-hook removes guest rows whose anonymous_id has since been stitched to a user. -#}
{{ config(pre_hook="{{ delete_stitched_guests() }}") }}
-- depends_on: {{ ref('int_users_stitched') }}

with

events as (
    select
        event_id,
        event_name,
        event_at,
        session_id,
        user_id,
        user_key,
        order_id,
        order_revenue,
        device_type,
        traffic_source,
        dbt_updated_at
    from {{ ref('fact_events') }}
),

{{ touched_keys('touched_users', ref('fact_events'), 'user_key') }}

user_events as (
    select events.*
    from events
    where {{ in_touched_keys('touched_users', 'events.user_key') }}
),

ranked_events as (
    select
        user_events.*,
        row_number() over (
            partition by user_events.user_key
            order by user_events.event_at, user_events.event_id
        ) as event_number
    from user_events
),

first_events as (
    select
        ranked_events.user_key,
        ranked_events.traffic_source as first_traffic_source,
        ranked_events.device_type as first_device_type
    from ranked_events
    where ranked_events.event_number = 1
),

orders_per_user as (
    select
        user_events.user_key,
        user_events.order_id,
        max(user_events.order_revenue) as order_revenue
    from user_events
    where user_events.event_name = 'purchase'
    group by 1, 2
),

user_revenue as (
    select
        orders_per_user.user_key,
        count(*) as orders,
        coalesce(sum(orders_per_user.order_revenue), 0) as revenue
    from orders_per_user
    group by 1
),

user_totals as (
    select
        user_events.user_key,
        max(user_events.user_id) as user_id,
        min(user_events.event_at) as first_seen_at,
        max(user_events.event_at) as last_seen_at,
        count(distinct user_events.session_id) as sessions,
        sum(case when user_events.event_name = 'add_to_cart' then 1 else 0 end) as add_to_carts
    from user_events
    group by 1
),

users_joined as (
    select
        user_totals.user_key,
        user_totals.user_id,
        user_totals.first_seen_at,
        user_totals.last_seen_at,
        first_events.first_traffic_source,
        first_events.first_device_type,
        cast(user_totals.sessions as integer) as sessions,
        cast(coalesce(user_revenue.orders, 0) as integer) as orders,
        coalesce(user_revenue.revenue, 0) as revenue,
        cast(user_totals.add_to_carts as integer) as add_to_carts
    from user_totals
    inner join first_events
        on user_totals.user_key = first_events.user_key
    left join user_revenue
        on user_totals.user_key = user_revenue.user_key
),

final as (
    select
        users_joined.user_key,
        users_joined.user_id,
        users_joined.user_id is not null as is_registered,
        users_joined.first_seen_at,
        users_joined.last_seen_at,
        users_joined.first_traffic_source,
        users_joined.first_device_type,
        users_joined.sessions,
        users_joined.orders,
        users_joined.revenue,
        case
            when users_joined.orders >= 2 then 'repeat_buyer'
            when users_joined.orders = 1 then 'buyer'
            when users_joined.add_to_carts > 0 then 'cart_abandoner'
            when users_joined.sessions >= 2 then 'returning'
            else 'new'
        end as segment,
        users_joined.add_to_carts,
        {{ run_timestamp() }} as dbt_updated_at
    from users_joined
)

select * from final
