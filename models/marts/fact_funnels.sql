{#- One row per session with the time it first reached each funnel step (var funnel_steps,
    in order). Step 1 is the first event of step 1; a session reaches step k when it has an
    event of step k at or after the time it reached step k-1 (equal timestamps count), so
    events out of order, repeated or skipping a step are handled. Incremental: sessions
    rewritten in fact_sessions since the last run are recomputed. -#}
{%- set steps = var('funnel_steps') -%}

{{ config(pre_hook="{{ delete_retired_sessions() }}") }}

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
        and {{ in_touched_keys_by_index('touched_sessions', 'session_id') }}
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

{#- each step's time as a window over the session's funnel events, one step after another: a
    chain of window aggregates over the same rows (sorted once), no self-joins, so the work is
    linear in the session's events whatever the planner guesses of their number -#}
{% for step in steps %}
    {%- set source = 'funnel_events' if loop.first else 'reached_' ~ steps[loop.index0 - 1] %}
    reached_{{ step }} as (
        select
            {{ source }}.*,
            min(
                case
                    when
                        {{ source }}.event_name = '{{ step }}'
                        {%- if not loop.first %}
                            and {{ source }}.event_at >= {{ source }}.{{ steps[loop.index0 - 1] }}_at
                        {%- endif %}
                        then {{ source }}.event_at
                end
            ) over (partition by {{ source }}.session_id) as {{ step }}_at
        from {{ source }}
    ),
{% endfor %}

reached_steps as (
    select
        reached_{{ steps[-1] }}.session_id,
        {% for step in steps -%}
            min(reached_{{ steps[-1] }}.{{ step }}_at) as {{ step }}_at{% if not loop.last %},{% endif %}
        {% endfor -%}
    from reached_{{ steps[-1] }}
    group by 1
),

final as (
    select
        sessions.session_id,
        sessions.session_date,
        sessions.device_type,
        sessions.traffic_source,
        sessions.user_key,
        {% for step in steps -%}
            reached_steps.{{ step }}_at,
        {% endfor -%}
        (
            {% for step in steps -%}
                case when reached_steps.{{ step }}_at is not null then 1 else 0 end
                {%- if not loop.last %} + {% endif %}
            {% endfor -%}
        ) as steps_reached,
        {{ seconds_between(
            'reached_steps.' ~ steps[0] ~ '_at',
            'reached_steps.' ~ steps[-1] ~ '_at',
        ) }} as seconds_to_{{ steps[-1] }},
        sessions.facts_changed_at,
        {{ run_timestamp() }} as dbt_updated_at
    from sessions
    left join reached_steps
        on sessions.session_id = reached_steps.session_id
)

select * from final
