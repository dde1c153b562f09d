{#- One row per user_key: a registered user (user_id) or a guest (anonymous_id never seen
    with a user_id). Segment rule, first match wins: repeat_buyer (2+ orders), buyer (1 order),
    cart_abandoner (added to cart, never ordered), returning (2+ sessions), new. Built from the
    user's sessions and orders (int_user_sessions, int_user_orders: one row per session or order
    and user_key of its events), so a returning user costs their sessions, not every event of
    their history. Incremental: users with sessions or orders rewritten there since the last run
    are recomputed; the pre-hook removes guest rows whose anonymous_id has since been stitched
    to a user. -#}
{{ config(pre_hook="{{ delete_stitched_guests() }}") }}
-- depends_on: {{ ref('int_users_stitched') }}

with

user_sessions as (
    select
        session_id,
        user_key,
        user_id,
        first_event_at,
        first_event_id,
        first_traffic_source,
        first_device_type,
        last_event_at,
        add_to_carts,
        dbt_updated_at
    from {{ ref('int_user_sessions') }}
),

user_orders as (
    select
        order_id,
        user_key,
        order_revenue,
        dbt_updated_at
    from {{ ref('int_user_orders') }}
),

{{ touched_keys('touched_users', [ref('int_user_sessions'), ref('int_user_orders')], 'user_key') }}

sessions_of_users as (
    select user_sessions.*
    from user_sessions
    where {{ in_touched_keys('touched_users', 'user_sessions.user_key') }}
),

orders_of_users as (
    select user_orders.*
    from user_orders
    where {{ in_touched_keys('touched_users', 'user_orders.user_key') }}
),

ranked_sessions as (
    select
        sessions_of_users.*,
        row_number() over (
            partition by sessions_of_users.user_key
            order by sessions_of_users.first_event_at, sessions_of_users.first_event_id
        ) as session_number
    from sessions_of_users
),

first_sessions as (
    select
        ranked_sessions.user_key,
        ranked_sessions.first_traffic_source,
        ranked_sessions.first_device_type
    from ranked_sessions
    where ranked_sessions.session_number = 1
),

user_revenue as (
    select
        orders_of_users.user_key,
        count(*) as orders,
        coalesce(sum(orders_of_users.order_revenue), 0) as revenue
    from orders_of_users
    group by 1
),

user_totals as (
    select
        sessions_of_users.user_key,
        max(sessions_of_users.user_id) as user_id,
        min(sessions_of_users.first_event_at) as first_seen_at,
        max(sessions_of_users.last_event_at) as last_seen_at,
        count(sessions_of_users.session_id) as sessions,
        sum(sessions_of_users.add_to_carts) as add_to_carts
    from sessions_of_users
    group by 1
),

users_joined as (
    select
        user_totals.user_key,
        user_totals.user_id,
        user_totals.first_seen_at,
        user_totals.last_seen_at,
        first_sessions.first_traffic_source,
        first_sessions.first_device_type,
        cast(user_totals.sessions as integer) as sessions,
        cast(coalesce(user_revenue.orders, 0) as integer) as orders,
        coalesce(user_revenue.revenue, 0) as revenue,
        cast(user_totals.add_to_carts as integer) as add_to_carts
    from user_totals
    inner join first_sessions
        on user_totals.user_key = first_sessions.user_key
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
