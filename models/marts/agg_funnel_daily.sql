{#- One row per session date, device type and traffic source: sessions, and sessions that
    reached each funnel step (var funnel_steps). Incremental: session dates with sessions
    whose facts changed (facts_changed_at) since the last run are recomputed whole. -#}
{%- set steps = var('funnel_steps') -%}

{{ config(
    pre_hook="{{ delete_moved_session_dates() }}",
    **replace_by_key_on_spark('session_date')
) }}

with

funnels as (
    select
        session_id,
        session_date,
        device_type,
        traffic_source,
        {% for step in steps -%}
            {{ step }}_at,
        {% endfor -%}
        dbt_updated_at
    from {{ ref('fact_funnels') }}
),

{{ touched_keys(
    'touched_dates', ref('fact_funnels'), 'session_date',
    changed_column='facts_changed_at', also=moved_session_dates()
) }}

final as (
    select
        funnels.session_date,
        funnels.device_type,
        funnels.traffic_source,
        cast(count(*) as bigint) as sessions,
        {% for step in steps -%}
            cast(count(funnels.{{ step }}_at) as bigint) as {{ step }}_sessions,
        {% endfor -%}
        {{ run_timestamp() }} as dbt_updated_at
    from funnels
    where {{ in_touched_keys('touched_dates', 'funnels.session_date') }}
    group by 1, 2, 3
)

select * from final
