{#- One row per UTC hour, event name, device type and traffic source: the number of events.
    Incremental: hours with events written or restated in fact_events since the last run are
    recomputed whole (delete+insert on event_hour). -#}

with

events as (
    select
        event_name,
        event_at,
        event_date,
        device_type,
        traffic_source,
        dbt_updated_at
    from {{ ref('fact_events') }}
),

{% if is_incremental() %}
    {#- read fact_events directly: a second reference to the events CTE would materialise it whole #}
    touched_hours as (
        select distinct
            changed_events.event_date,
            {{ utc_hour('changed_events.event_at') }} as event_hour
        from {{ ref('fact_events') }} as changed_events
        where changed_events.dbt_updated_at > {{ run_watermark() }}
    ),

    events_in_scope as (
        select
            events.*,
            {{ utc_hour('events.event_at') }} as event_hour
        from events
        where
            {{ in_subquery('events.event_date', 'select touched_hours.event_date from touched_hours') }}
            and {{ utc_hour('events.event_at') }} in (select touched_hours.event_hour from touched_hours)
    ),
{% else %}
    events_in_scope as (
        select
            events.*,
            {{ utc_hour('events.event_at') }} as event_hour
        from events
    ),
{% endif %}

final as (
    select
        events_in_scope.event_hour,
        events_in_scope.event_date,
        events_in_scope.event_name,
        events_in_scope.device_type,
        events_in_scope.traffic_source,
        cast(count(*) as bigint) as events,
        {{ run_timestamp() }} as dbt_updated_at
    from events_in_scope
    group by 1, 2, 3, 4, 5
)

select * from final
