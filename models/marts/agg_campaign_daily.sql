{#- One row per session date, device type, traffic source and campaign: sessions, sessions
    with a purchase and their revenue (fact_sessions). Incremental: session dates with
    sessions rewritten in fact_sessions since the last run are recomputed whole. -#}

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

{% if is_incremental() %}
    {#- read fact_sessions directly: a second reference to the sessions CTE would materialise it whole #}
    touched_dates as (
        select distinct changed_sessions.session_date
        from {{ ref('fact_sessions') }} as changed_sessions
        where changed_sessions.dbt_updated_at > {{ run_watermark() }}
    ),
{% endif %}

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
    {% if is_incremental() -%}
        where {{ in_subquery('sessions.session_date', 'select touched_dates.session_date from touched_dates') }}
    {%- endif %}
    group by 1, 2, 3, 4
)

select * from final
