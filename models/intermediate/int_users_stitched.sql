{#- Identity stitching: one row per anonymous_id ever seen together with a user_id. The first
    user_id seen for an anonymous_id (by event time, then load order) is the one its anonymous
    events belong to, before and after sign-in; a mapping, once made, does not change. -#}
{{
    config(
        materialized='incremental',
        unique_key='anonymous_id',
        incremental_strategy=keyed_incremental_strategy(),
        indexes=[{'columns': ['anonymous_id'], 'unique': true}, {'columns': ['dbt_updated_at']}],
    )
}}
{{ config(post_hook="{{ record_incremental_run() }}") }}
-- depends_on: {{ ref('int_raw_loads') }}

{{ refuse_full_build_of_trimmed_raw() }}
with

identified_events as (
    select
        anonymous_id,
        user_id,
        event_at,
        loaded_at,
        bucket,
        object_key,
        line_number
    from {{ ref('stg_clickstream__events') }}
    where
        is_valid
        and user_id is not null
        and {{ when_incremental(in_unprocessed_loads()) }}
),

ranked as (
    select
        identified_events.*,
        row_number() over (
            partition by identified_events.anonymous_id
            order by
                identified_events.event_at,
                identified_events.loaded_at,
                identified_events.bucket,
                identified_events.object_key,
                identified_events.line_number
        ) as sighting_number
    from identified_events
),

first_sightings as (
    select
        ranked.anonymous_id,
        ranked.user_id,
        ranked.event_at as stitched_at,
        ranked.loaded_at
    from ranked
    where
        ranked.sighting_number = 1
        and {{ not_in_this('anonymous_id', 'ranked') }}
),

final as (
    select
        anonymous_id,
        user_id,
        stitched_at,
        loaded_at,
        {{ run_timestamp() }} as dbt_updated_at
    from first_sightings
)

select * from final
