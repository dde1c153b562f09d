{#- One row per session date, device type, traffic source, path and purchase path: sessions
    on that path and those of them with a purchase (int_session_paths, one row per session with
    its path and purchase path). Every session is in exactly one row. Incremental: session
    dates with sessions rewritten in int_session_paths since the last run are recounted from
    it (one row per session: a date's count costs its sessions, never its events). -#}

{{ config(
    pre_hook="{{ delete_moved_session_dates() }}",
    **replace_by_key_on_spark('session_date')
) }}

with

session_paths as (
    select
        session_date,
        device_type,
        traffic_source,
        path,
        purchase_path,
        has_purchase,
        dbt_updated_at
    from {{ ref('int_session_paths') }}
),

{{ touched_keys('touched_dates', ref('int_session_paths'), 'session_date', also=moved_session_dates()) }}

final as (
    select
        session_paths.session_date,
        session_paths.device_type,
        session_paths.traffic_source,
        session_paths.path,
        session_paths.purchase_path,
        cast(count(*) as bigint) as sessions,
        cast(count(*) filter (where session_paths.has_purchase) as bigint) as purchase_sessions,
        {{ run_timestamp() }} as dbt_updated_at
    from session_paths
    where {{ in_touched_keys('touched_dates', 'session_paths.session_date') }}
    group by 1, 2, 3, 4, 5
)

select * from final
