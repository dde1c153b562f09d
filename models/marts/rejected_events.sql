{#- The quarantine: one row per raw line that breaks the event contract, with the reason.
    These lines never reach the other marts. Incremental on loaded_at like fact_events; while
    it is empty, fact_events' watermark stands in (so an empty quarantine never rescans raw). -#}
{{ config(post_hook="{{ record_incremental_run() }}") }}
-- depends_on: {{ ref('int_raw_loads') }}

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

final as (
    select
        staged_events.bucket || '/' || staged_events.object_key || '#'
        || cast(staged_events.line_number as {{ type_text() }}) as raw_line_id,
        staged_events.bucket,
        staged_events.object_key,
        staged_events.line_number,
        staged_events.load_id,
        staged_events.loaded_at,
        staged_events.event_id,
        staged_events.event_name,
        staged_events.event_timestamp,
        staged_events.invalid_reason as reason,
        staged_events.payload,
        {{ run_timestamp() }} as dbt_updated_at
    from staged_events
)

select * from final
