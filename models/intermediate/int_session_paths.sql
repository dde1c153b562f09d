{#- One row per session: its path and purchase path (the journeys' steps), with the session's
    date, device type, traffic source and whether it bought: what agg_paths_daily counts. A
    session's path is its ordered steps (the event name, or for a page view the page type of its
    path: home, product, category, other), consecutive repeats collapsed, its first var
    path_depth steps joined with ' > ' (then ' > …' when the session went on). Its purchase path
    is the same steps up to and including its first purchase step, the last var path_depth of
    them ('… > ' before them when earlier steps were cut); null without a purchase.
    Incremental: the sessions whose facts changed in fact_sessions since the last run (an event
    joined them) are recomputed from their events, whatever the history's size. -#}
{%- set depth = var('path_depth') | int -%}

{{
    config(
        materialized='incremental',
        unique_key='session_id',
        incremental_strategy=keyed_incremental_strategy(),
        pre_hook="{{ delete_retired_sessions() }}",
        indexes=[
            {'columns': ['session_id'], 'unique': true},
            {'columns': ['session_date']},
            {'columns': ['dbt_updated_at']},
        ],
    )
}}

with

sessions as (
    select
        session_id,
        session_date,
        device_type,
        traffic_source,
        has_purchase,
        facts_changed_at,
        dbt_updated_at
    from {{ ref('fact_sessions') }}
),

events as (
    select
        event_id,
        event_name,
        event_at,
        session_id,
        page_path
    from {{ ref('fact_events') }}
),

{{ touched_keys('touched_sessions', ref('fact_sessions'), 'session_id', changed_column='facts_changed_at') }}

sessions_to_build as (
    select sessions.*
    from sessions
    where {{ in_touched_keys_by_index('touched_sessions', 'sessions.session_id') }}
),

session_events as (
    select events.*
    from events
    where {{ in_touched_keys_by_index('touched_sessions', 'events.session_id') }}
),

events_as_steps as (
    select
        session_events.session_id,
        session_events.event_at,
        session_events.event_id,
        case
            when session_events.event_name = 'page_view'
                then {{ page_type('session_events.page_path') }}
            else session_events.event_name
        end as step_name
    from session_events
),

steps_with_previous as (
    select
        events_as_steps.*,
        lag(events_as_steps.step_name) over (
            partition by events_as_steps.session_id
            order by events_as_steps.event_at, events_as_steps.event_id
        ) as previous_step_name
    from events_as_steps
),

collapsed_steps as (
    select
        steps_with_previous.session_id,
        steps_with_previous.step_name,
        row_number() over (
            partition by steps_with_previous.session_id
            order by steps_with_previous.event_at, steps_with_previous.event_id
        ) as step_number
    from steps_with_previous
    where
        steps_with_previous.previous_step_name is null
        or steps_with_previous.previous_step_name != steps_with_previous.step_name
),

steps_with_first_purchase as (
    select
        collapsed_steps.*,
        min(case when collapsed_steps.step_name = 'purchase' then collapsed_steps.step_number end) over (
            partition by collapsed_steps.session_id
        ) as first_purchase_step_number
    from collapsed_steps
),

session_paths as (
    select
        steps_with_first_purchase.session_id,
        {{ join_in_order(
            "case when steps_with_first_purchase.step_number <= " ~ depth
            ~ " then steps_with_first_purchase.step_name end",
            'steps_with_first_purchase.step_number'
        ) }} as first_steps,
        {# the last path_depth steps up to the first purchase; on Spark an all-null group
           joins to '' (string_agg gives null): purchase_path below keeps only purchasers' #}
        {{ join_in_order(
            "case when steps_with_first_purchase.step_number between "
            ~ "steps_with_first_purchase.first_purchase_step_number - " ~ (depth - 1)
            ~ " and steps_with_first_purchase.first_purchase_step_number"
            ~ " then steps_with_first_purchase.step_name end",
            'steps_with_first_purchase.step_number'
        ) }} as steps_to_purchase,
        max(steps_with_first_purchase.step_number) as steps,
        max(steps_with_first_purchase.first_purchase_step_number) as first_purchase_step_number
    from steps_with_first_purchase
    group by 1
),

sessions_with_paths as (
    select
        sessions_to_build.session_id,
        sessions_to_build.session_date,
        sessions_to_build.device_type,
        sessions_to_build.traffic_source,
        sessions_to_build.has_purchase,
        case
            when session_paths.steps > {{ depth }} then session_paths.first_steps || ' > …'
            else session_paths.first_steps
        end as path,  -- noqa: RF04
        case
            when session_paths.first_purchase_step_number is null then null
            when session_paths.first_purchase_step_number > {{ depth }}
                then '… > ' || session_paths.steps_to_purchase
            else session_paths.steps_to_purchase
        end as purchase_path,
        sessions_to_build.facts_changed_at
    from sessions_to_build
    inner join session_paths
        on sessions_to_build.session_id = session_paths.session_id
),

final as (
    select
        sessions_with_paths.session_id,
        sessions_with_paths.session_date,
        sessions_with_paths.device_type,
        sessions_with_paths.traffic_source,
        sessions_with_paths.has_purchase,
        sessions_with_paths.path,
        sessions_with_paths.purchase_path,
        sessions_with_paths.facts_changed_at,
        {{ run_timestamp() }} as dbt_updated_at
    from sessions_with_paths
)

select * from final
