{#- Reconciliation: every distinct event_id among valid raw lines is a row of fact_events (but
    the bots it leaves out, var exclude_bots), and every row of fact_events is such an event_id.
    Loads trimmed from raw once the marts held them (raw.trimmed_loads, python -m loader trim)
    are the exception: their rows stay in fact_events, their lines are in the bucket only.
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
    where is_valid
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

missing as (
    select count(*) as events_missing_from_fact_events
    from expected_events
    where not exists (
        select 1
        from {{ ref('fact_events') }} as fact_events
        where fact_events.event_id = expected_events.event_id
    )
),

unexpected as (
    select count(*) as fact_events_rows_not_in_raw
    from {{ ref('fact_events') }} as fact_events
    where
        not exists (
            select 1
            from expected_events
            where expected_events.event_id = fact_events.event_id
        )
        and not exists (
            select 1
            from {{ trimmed_raw_loads() }} as trimmed_loads
            where trimmed_loads.loaded_at = fact_events.loaded_at
        )
),

final as (
    select
        missing.events_missing_from_fact_events,
        unexpected.fact_events_rows_not_in_raw
    from missing
    cross join unexpected
    where missing.events_missing_from_fact_events > 0 or unexpected.fact_events_rows_not_in_raw > 0
)

select * from final
