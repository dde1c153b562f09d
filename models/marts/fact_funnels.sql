{#- One row per session with the time it first reached each funnel step (var funnel_steps,
    in order). Step 1 is the first event of step 1; a session reaches step k when it has an
    event of step k at or after the time it reached step k-1 (equal timestamps count), so
    events out of order, repeated or skipping a step are handled. Incremental: sessions
    rewritten in fact_sessions since the last run are recomputed. -#}
{%- set steps = var('funnel_steps') -%}

with

{{ touched_keys('touched_sessions', ref('fact_sessions'), 'session_id') }}

sessions as (
    select
        session_id,
        session_date,
        device_type,
        traffic_source,
        user_key,
        facts_changed_at,
        dbt_updated_at
    from {{ ref('fact_sessions') }}
    {% if is_incremental() -%}
        where dbt_updated_at > {{ run_watermark() }}
    {%- endif %}
),

events as (
    select
        session_id,
        event_name,
        event_at
    from {{ ref('fact_events') }}
    where
        event_name in ('{{ steps | join("', '") }}')
        and {{ in_touched_keys('touched_sessions', 'session_id') }}
),

funnel_events as (
    select
        events.session_id,
        events.event_name,
        events.event_at
    from events
    inner join sessions
        on events.session_id = sessions.session_id
),

{% for step in steps %}
    {%- if loop.first %}
        reached_{{ step }} as (
            select
                funnel_events.session_id,
                min(funnel_events.event_at) as {{ step }}_at
            from funnel_events
            where funnel_events.event_name = '{{ step }}'
            group by 1
        ),
    {%- else %}
        {%- set previous = steps[loop.index0 - 1] %}
        reached_{{ step }} as (
            select
                reached_{{ previous }}.session_id,
                min(funnel_events.event_at) as {{ step }}_at
            from reached_{{ previous }}
            inner join funnel_events
                on
                    reached_{{ previous }}.session_id = funnel_events.session_id
                    and reached_{{ previous }}.{{ previous }}_at <= funnel_events.event_at
                    and funnel_events.event_name = '{{ step }}'
            group by 1
        ),
    {%- endif %}
{% endfor %}

final as (
    select
        sessions.session_id,
        sessions.session_date,
        sessions.device_type,
        sessions.traffic_source,
        sessions.user_key,
        {% for step in steps -%}
            reached_{{ step }}.{{ step }}_at,
        {% endfor -%}
        (
            {% for step in steps -%}
                case when reached_{{ step }}.{{ step }}_at is not null then 1 else 0 end
                {%- if not loop.last %} + {% endif %}
            {% endfor -%}
        ) as steps_reached,
        {{ seconds_between(
            'reached_' ~ steps[0] ~ '.' ~ steps[0] ~ '_at',
            'reached_' ~ steps[-1] ~ '.' ~ steps[-1] ~ '_at',
        ) }} as seconds_to_{{ steps[-1] }},
        sessions.facts_changed_at,
        {{ run_timestamp() }} as dbt_updated_at
    from sessions
    {% for step in steps -%}
        left join reached_{{ step }}
            on sessions.session_id = reached_{{ step }}.session_id
    {% endfor %}
)

select * from final
