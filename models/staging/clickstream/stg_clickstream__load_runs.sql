{#- One row per loader run, as the loader records it. -#}

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
        error
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
        error
    from load_runs
)

select * from final
