{#- Reconciliation: every distinct event_id among valid raw lines is a row of fact_events (but
    the bots it leaves out, var exclude_bots), and every row of fact_events is such an event_id.
    Loads trimmed from raw once the marts held them (raw.trimmed_loads, python -m loader trim)
    are the exception: their rows stay in fact_events, their lines are in the bucket only; so
    are lines of months past retention (RETENTION_MONTHS), which fact_events does not take.
    Returns a row (a failure) with the counts when they differ. It reads every raw line: tagged
    so a frequent build can skip it (the daily full check runs it). -#}
{{ config(tags=['full_scan']) }}
-- depends_on: {{ source('clickstream', 'trimmed_loads') }}

with

valid_lines as (
    select
        event_id,
        is_bot,
        loaded_at,
        bucket,
        object_key,
        line_number
    from {{ ref('stg_clickstream__events') }}
    where
        is_valid
        and {{ kept_by_retention('event_at') }}
),

ranked_copies as (
    select
        valid_lines.event_id,
        valid_lines.is_bot,
        row_number() over (
            partition by valid_lines.event_id
            order by valid_lines.loaded_at, valid_lines.bucket, valid_lines.object_key, valid_lines.line_number
        ) as copy_number
    from valid_lines
),

expected_events as (
    select ranked_copies.event_id
    from ranked_copies
    where
        ranked_copies.copy_number = 1
        {% if var('exclude_bots') -%}
            and not ranked_copies.is_bot
        {%- endif %}
),

{#- both sides in one pass, grouped by event_id: no join whose plan hangs on a row estimate
    (the planner guesses the valid lines at a fraction of a percent of raw) -#}
sides as (
    select
        expected_events.event_id,
        1 as in_raw,
        0 as in_fact_events,
        0 as in_trimmed_load
    from expected_events
    union all
    select
        fact_events.event_id,
        0 as in_raw,
        1 as in_fact_events,
        case when trimmed_loads.loaded_at is null then 0 else 1 end as in_trimmed_load
    from {{ ref('fact_events') }} as fact_events
    left join {{ trimmed_raw_loads() }} as trimmed_loads
        on fact_events.loaded_at = trimmed_loads.loaded_at
),

per_event as (
    select
        sides.event_id,
        max(sides.in_raw) as in_raw,
        max(sides.in_fact_events) as in_fact_events,
        max(sides.in_trimmed_load) as in_trimmed_load
    from sides
    group by sides.event_id
),

counts as (
    select
        sum(case when per_event.in_raw = 1 and per_event.in_fact_events = 0 then 1 else 0 end)
            as events_missing_from_fact_events,
        sum(
            case
                when per_event.in_fact_events = 1 and per_event.in_raw = 0 and per_event.in_trimmed_load = 0
                    then 1
                else 0
            end
        ) as fact_events_rows_not_in_raw
    from per_event
),

final as (
    select
        counts.events_missing_from_fact_events,
        counts.fact_events_rows_not_in_raw
    from counts
    where counts.events_missing_from_fact_events > 0 or counts.fact_events_rows_not_in_raw > 0
)

select * from final
