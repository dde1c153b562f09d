{#- One row per daily full check (python -m loader check), as the loader records it. -#}
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
        warnings,
        error
    from {{ source('clickstream', 'full_checks') }}
),

final as (
    select
        check_id,
        started_at,
        finished_at,
        lower(status) as status,
        tests,
        failures,
        warnings,
        error
    from full_checks
)

select * from final
