{#- One row per session date, device type, traffic source and campaign: sessions, sessions
    with a purchase and their revenue (fact_sessions). Incremental: session dates with
    sessions whose facts changed (facts_changed_at: an event joined them) since the last run
    are recomputed whole. -#}

{{ config(
    pre_hook="{{ delete_moved_session_dates() }}",
    **replace_by_key_on_spark('session_date')
) }}

with

sessions as (
    select
        session_id,
        session_date,
        device_type,
        traffic_source,
        traffic_campaign,
        has_purchase,
        revenue,
        dbt_updated_at
    from {{ ref('fact_sessions') }}
),

{{ touched_keys(
    'touched_dates', ref('fact_sessions'), 'session_date',
    changed_column='facts_changed_at', also=moved_session_dates()
) }}

final as (
    select
        sessions.session_date,
        sessions.device_type,
        sessions.traffic_source,
        sessions.traffic_campaign,
        cast(count(*) as bigint) as sessions,
        cast(count(*) filter (where sessions.has_purchase) as bigint) as purchase_sessions,
        coalesce(sum(sessions.revenue), 0) as revenue,
        {{ run_timestamp() }} as dbt_updated_at
    from sessions
    where {{ in_touched_keys('touched_dates', 'sessions.session_date') }}
    group by 1, 2, 3, 4
)

select * from final
