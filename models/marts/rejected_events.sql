{#- The quarantine: one row per raw line that breaks the event contract, with the reason.
    These lines never reach the other marts. Incremental on loaded_at like fact_events; while
    it is empty, fact_events' watermark stands in (so an empty quarantine never rescans raw).
    A raw line read twice (a Spark build killed after committing its rows, before its manifest)
    is one row: its first loaded copy. The dashboards' role reads every column but payload
    (macro hide_columns_from_dashboard_reader, in the transaction that writes the table). -#}
{{ config(
    post_hook=[
        "{{ record_incremental_run() }}",
        "{{ hide_columns_from_dashboard_reader(this.schema, this.identifier) }}",
    ],
) }}
-- depends_on: {{ ref('int_raw_loads') }}

{{ refuse_full_build_of_trimmed_raw() }}
with

staged_events as (
    select
        bucket,
        object_key,
        line_number,
        load_id,
        loaded_at,
        event_id,
        event_name,
        event_timestamp,
        invalid_reason,
        payload
    from {{ ref('stg_clickstream__events') }}
    where
        not is_valid
        and {{ when_incremental(in_unprocessed_loads()) }}
),

ranked_copies as (
    select
        staged_events.bucket || '/' || staged_events.object_key || '#'
        || cast(staged_events.line_number as {{ type_text() }}) as raw_line_id,
        staged_events.*,
        row_number() over (
            partition by staged_events.bucket, staged_events.object_key, staged_events.line_number
            order by staged_events.loaded_at, staged_events.load_id
        ) as copy_number
    from staged_events
),

final as (
    select
        ranked_copies.raw_line_id,
        ranked_copies.bucket,
        ranked_copies.object_key,
        ranked_copies.line_number,
        ranked_copies.load_id,
        ranked_copies.loaded_at,
        ranked_copies.event_id,
        ranked_copies.event_name,
        ranked_copies.event_timestamp,
        ranked_copies.invalid_reason as reason,
        ranked_copies.payload,
        {{ run_timestamp() }} as dbt_updated_at
    from ranked_copies
    where
        ranked_copies.copy_number = 1
        and {{ not_in_this('raw_line_id', 'ranked_copies') }}
)

select * from final
