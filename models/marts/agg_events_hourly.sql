{#- One row per UTC hour, event name, device type and traffic source: the number of events.
    Incremental and additive (macro record_full_build): the events inserted into fact_events
    since the last run are counted per cell and added to the cells' counts (a late event adds
    one to its old hour; nothing else of that hour is read); a restatement changes no column
    counted here. After a rebuild of fact_events alone it counts everything again. -#}
{%- set cell = ['event_hour', 'event_name', 'device_type', 'traffic_source'] -%}
{%- set adding = is_incremental() and not upstream_rebuilt_since_this('fact_events') -%}

{{ config(
    unique_key=cell,
    pre_hook="{{ delete_all_when_upstream_rebuilt('fact_events') }}",
) }}

with

events as (
    select
        event_name,
        event_at,
        event_date,
        device_type,
        traffic_source
    from {{ ref('fact_events') }}
    {% if adding -%}
        {#- a row's inserted_at is never after its dbt_updated_at: the latter's index finds them -#}
        where
            dbt_updated_at > {{ run_watermark() }}
            and inserted_at > {{ run_watermark() }}
    {%- endif %}
),

new_counts as (
    select
        {{ utc_hour('events.event_at') }} as event_hour,
        events.event_date,
        events.event_name,
        events.device_type,
        events.traffic_source,
        count(*) as events
    from events
    group by 1, 2, 3, 4, 5
),

{% if adding -%}
    counted as (
        select
            already_counted.event_hour,
            already_counted.event_name,
            already_counted.device_type,
            already_counted.traffic_source,
            already_counted.events
        from {{ this }} as already_counted
        where already_counted.event_hour in (select new_counts.event_hour from new_counts)
    ),
{%- endif %}

final as (
    select
        new_counts.event_hour,
        new_counts.event_date,
        new_counts.event_name,
        new_counts.device_type,
        new_counts.traffic_source,
        cast(new_counts.events {% if adding %}+ coalesce(counted.events, 0){% endif %} as bigint) as events,
        {{ run_timestamp() }} as dbt_updated_at
    from new_counts
    {% if adding -%}
        left join counted
            on {{ columns_equal('new_counts', 'counted', cell) }}
    {%- endif %}
)

select * from final
