{#- One row per UTC hour, event name, device type and traffic source: the number of events.
    Incremental: hours with events inserted into fact_events since the last run are recomputed
    whole (delete+insert on event_hour); a restatement changes no column counted here. -#}

{{ config(**replace_by_key_on_spark('event_hour')) }}

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

{{ touched_keys(
    'touched_hours',
    ref('fact_events'),
    {'event_date': 'event_date', 'event_hour': utc_hour('event_at')},
    changed_column='inserted_at',
) }}

events_in_scope as (
    select
        events.*,
        {{ utc_hour('events.event_at') }} as event_hour
    from events
    where
        {{ in_touched_keys(
            'touched_hours',
            {'events.event_date': 'event_date', utc_hour('events.event_at'): 'event_hour'},
        ) }}
),

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
