{#- One row per session and user_key of its events (a session whose earlier events are a
    guest's and later ones a user's, before a stitch, has a row for each): the user's first and
    last event in it, its first event's traffic source and device, the user_id it carried, its
    adds to cart. What dim_users sums per user, so a returning user costs their sessions, not
    every event of their history. Incremental: the sessions with events written or restated in
    fact_events since the last run (a new or late event, a stitch that changed user_keys) are
    recomputed from their events; a pre-hook deletes their rows first (a stitched guest's row
    goes), and the new rows are appended (both engines). -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ delete_recomputed_keys('session_id', user_sessions_touched()) }}",
        indexes=[
            {'columns': ['session_id']},
            {'columns': ['user_key']},
            {'columns': ['dbt_updated_at']},
        ],
    )
}}

with

events as (
    select
        event_id,
        event_name,
        event_at,
        session_id,
        user_id,
        user_key,
        device_type,
        traffic_source
    from {{ ref('fact_events') }}
    where {{ when_incremental(in_short_list('session_id', user_sessions_touched())) }}
),

ranked_events as (
    select
        events.*,
        row_number() over (
            partition by events.session_id, events.user_key
            order by events.event_at, events.event_id
        ) as event_number
    from events
),

first_events as (
    select
        ranked_events.session_id,
        ranked_events.user_key,
        ranked_events.event_id as first_event_id,
        ranked_events.traffic_source as first_traffic_source,
        ranked_events.device_type as first_device_type
    from ranked_events
    where ranked_events.event_number = 1
),

session_totals as (
    select
        events.session_id,
        events.user_key,
        max(events.user_id) as user_id,
        min(events.event_at) as first_event_at,
        max(events.event_at) as last_event_at,
        sum(case when events.event_name = 'add_to_cart' then 1 else 0 end) as add_to_carts
    from events
    group by 1, 2
),

final as (
    select
        session_totals.session_id,
        session_totals.user_key,
        session_totals.user_id,
        session_totals.first_event_at,
        first_events.first_event_id,
        first_events.first_traffic_source,
        first_events.first_device_type,
        session_totals.last_event_at,
        cast(session_totals.add_to_carts as integer) as add_to_carts,
        {{ run_timestamp() }} as dbt_updated_at
    from session_totals
    inner join first_events
        on
            session_totals.session_id = first_events.session_id
            and session_totals.user_key = first_events.user_key
)

select * from final
