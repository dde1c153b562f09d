{#- One row per daily full check: when it ran, how many tests, how many failed. A view, so the
    data-health bar shows a check the moment the loader records it. -#}
{{ config(materialized=view_materialization()) }}

with

full_checks as (
    select
        check_id,
        started_at,
        finished_at,
        status,
        tests,
        failures,
        warnings
    from {{ ref('stg_clickstream__full_checks') }}
),

final as (
    select
        check_id,
        started_at,
        finished_at,
        {{ seconds_between('started_at', 'finished_at') }} as duration_seconds,
        status,
        tests,
        failures,
        warnings
    from full_checks
)

select * from final
