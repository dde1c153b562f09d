{#- One row per session date, device type and traffic source: sessions, and sessions that
    reached each funnel step (var funnel_steps). Incremental: session dates with sessions
    rewritten in fact_funnels since the last run are recomputed whole. -#}
{%- set steps = var('funnel_steps') -%}

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

{% if is_incremental() %}
    {#- read fact_funnels directly: a second reference to the funnels CTE would materialise it whole #}
    touched_dates as (
        select distinct changed_funnels.session_date
        from {{ ref('fact_funnels') }} as changed_funnels
        where changed_funnels.dbt_updated_at > {{ run_watermark() }}
    ),
{% endif %}

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
    {% if is_incremental() -%}
        where {{ in_subquery('funnels.session_date', 'select touched_dates.session_date from touched_dates') }}
    {%- endif %}
    group by 1, 2, 3
)

select * from final
