{#- One row per session, keyed on session_id alone (signing in never splits a session).
    The session's user is the first user_id seen in it, else the (stitched) user_key of its
    first event; device, traffic and landing page come from its first event (first page_view
    for the landing page). A bounce is a session of a single event. Incremental: sessions with
    events written or restated in fact_events since the last run are recomputed whole.
    facts_changed_at, the newest inserted_at of its events, moves only when an event joins the
    session (a restatement changes its user_key alone): the session aggregates follow it. -#}
{{ config(post_hook="{{ ensure_user_sessions_index() }}") }}

with

events as (
    select
        event_id,
        event_name,
        event_at,
        session_id,
        anonymous_id,
        user_id,
        user_key,
        order_id,
        order_revenue,
        page_path,
        device_type,
        traffic_source,
        traffic_medium,
        traffic_campaign,
        inserted_at,
        dbt_updated_at
    from {{ ref('fact_events') }}
),

{{ touched_keys('touched_sessions', ref('fact_events'), 'session_id') }}

session_events as (
    select events.*
    from events
    where {{ in_touched_keys_by_index('touched_sessions', 'events.session_id') }}
),

ranked_events as (
    select
        session_events.*,
        row_number() over (
            partition by session_events.session_id
            order by session_events.event_at, session_events.event_id
        ) as event_number,
        row_number() over (
            partition by session_events.session_id
            order by
                case when session_events.user_id is not null then 0 else 1 end,
                session_events.event_at,
                session_events.event_id
        ) as identified_rank,
        row_number() over (
            partition by session_events.session_id
            order by
                case
                    when session_events.event_name = 'page_view' and session_events.page_path is not null then 0
                    else 1
                end,
                session_events.event_at,
                session_events.event_id
        ) as landing_rank
    from session_events
),

first_events as (
    select
        ranked_events.session_id,
        ranked_events.anonymous_id,
        ranked_events.user_key,
        ranked_events.device_type,
        ranked_events.traffic_source,
        ranked_events.traffic_medium,
        ranked_events.traffic_campaign
    from ranked_events
    where ranked_events.event_number = 1
),

first_identified_events as (
    select
        ranked_events.session_id,
        ranked_events.user_id
    from ranked_events
    where ranked_events.identified_rank = 1
),

landing_pages as (
    select
        ranked_events.session_id,
        ranked_events.page_path as landing_page_path
    from ranked_events
    where ranked_events.landing_rank = 1
),

orders_per_session as (
    select
        session_events.session_id,
        session_events.order_id,
        max(session_events.order_revenue) as order_revenue
    from session_events
    where session_events.event_name = 'purchase'
    group by 1, 2
),

session_revenue as (
    select
        orders_per_session.session_id,
        count(*) as orders,
        coalesce(sum(orders_per_session.order_revenue), 0) as revenue
    from orders_per_session
    group by 1
),

session_totals as (
    select
        session_events.session_id,
        min(session_events.event_at) as session_start_at,
        max(session_events.event_at) as session_end_at,
        count(*) as events,
        sum(case when session_events.event_name = 'page_view' then 1 else 0 end) as page_views,
        sum(case when session_events.event_name = 'product_view' then 1 else 0 end) as product_views,
        sum(case when session_events.event_name = 'add_to_cart' then 1 else 0 end) as add_to_carts,
        max(session_events.inserted_at) as facts_changed_at
    from session_events
    group by 1
),

final as (
    select
        session_totals.session_id,
        coalesce(first_identified_events.user_id, first_events.user_key) as user_key,
        first_events.anonymous_id,
        session_totals.session_start_at,
        session_totals.session_end_at,
        {{ utc_date('session_totals.session_start_at') }} as session_date,
        {{ seconds_between('session_totals.session_start_at', 'session_totals.session_end_at') }}
            as duration_seconds,
        cast(session_totals.events as integer) as events,
        cast(session_totals.page_views as integer) as page_views,
        cast(session_totals.product_views as integer) as product_views,
        cast(session_totals.add_to_carts as integer) as add_to_carts,
        landing_pages.landing_page_path,
        first_events.device_type,
        first_events.traffic_source,
        first_events.traffic_medium,
        first_events.traffic_campaign,
        session_totals.events = 1 as is_bounce,
        session_revenue.session_id is not null as has_purchase,
        cast(coalesce(session_revenue.orders, 0) as integer) as orders,
        coalesce(session_revenue.revenue, 0) as revenue,
        session_totals.facts_changed_at,
        {{ run_timestamp() }} as dbt_updated_at
    from session_totals
    inner join first_events
        on session_totals.session_id = first_events.session_id
    inner join first_identified_events
        on session_totals.session_id = first_identified_events.session_id
    inner join landing_pages
        on session_totals.session_id = landing_pages.session_id
    left join session_revenue
        on session_totals.session_id = session_revenue.session_id
)

select * from final
