{#- One row per loader run: when it ran, what it loaded and rejected, its status. A view, so
    the data-health page sees a run the moment the loader records it. -#}
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
    from {{ ref('stg_clickstream__load_runs') }}
),

final as (
    select
        load_id,
        started_at,
        finished_at,
        {{ seconds_between('started_at', 'finished_at') }} as duration_seconds,
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
    from load_runs
)

select * from final
