{#- Reconciliation: the distinct event_ids among valid raw lines equal the rows of fact_events
    plus the bots it leaves out (var exclude_bots). Returns a row (a failure) when they differ.
    It reads every raw line: tagged so a frequent build can skip it (--exclude tag:full_scan). -#}
{{ config(tags=['full_scan']) }}

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

expected as (
    select
        count(*) as distinct_valid_event_ids,
        sum(case when ranked_copies.is_bot then 1 else 0 end) as bot_event_ids
    from ranked_copies
    where ranked_copies.copy_number = 1
),

actual as (
    select count(*) as fact_events_rows
    from {{ ref('fact_events') }}
),

final as (
    select
        expected.distinct_valid_event_ids,
        expected.bot_event_ids,
        actual.fact_events_rows
    from expected
    cross join actual
    where
        expected.distinct_valid_event_ids
        != actual.fact_events_rows
        {% if var('exclude_bots') %} + coalesce(expected.bot_event_ids, 0){% endif %}
)

select * from final
