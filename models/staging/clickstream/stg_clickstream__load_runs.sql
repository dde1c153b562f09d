{#- One row per loader run, as the loader records it. -#}
{{ config(materialized=view_materialization()) }}

with

load_runs as (
    select
        load_id,
        started_at,
        finished_at,
        objects,
        events,
        rejects,
        etag_changes,
        status,
        error,
        last_loaded_at,
        dbt_status,
        dbt_started_at,
        dbt_finished_at
    from {{ source('clickstream', 'load_runs') }}
),

final as (
    select
        load_id,
        started_at,
        finished_at,
        objects,
        events,
        rejects,
        etag_changes,
        lower(status) as status,
        error,
        last_loaded_at,
        lower(dbt_status) as dbt_status,
        dbt_started_at,
        dbt_finished_at
    from load_runs
)

select * from final
