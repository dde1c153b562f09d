{#- One row per load: a distinct loaded_at value of raw.clickstream_events (the loader stamps
    every line of one load transaction with the same loaded_at), with the dbt run that first
    saw it. The incremental models read only the lines of loads they have not processed yet,
    through the raw table's loaded_at index, so an incremental run costs what the new loads
    cost, whatever the size of the history. Loads up to var incremental_lookback older than
    the newest one are checked again, so a load that committed late is still picked up. -#}
{{
    config(
        materialized='incremental',
        unique_key='loaded_at',
        incremental_strategy=keyed_incremental_strategy(),
        indexes=[{'columns': ['loaded_at'], 'unique': true}, {'columns': ['dbt_updated_at']}],
    )
}}

{{ refuse_full_build_of_trimmed_raw() }}
with

raw_lines as (
    select loaded_at
    from {{ ref('stg_clickstream__events') }}
    {% if is_incremental() -%}
        where loaded_at >= {{ loaded_at_watermark() }}
    {%- endif %}
),

loads as (
    select distinct raw_lines.loaded_at
    from raw_lines
),

final as (
    select
        loads.loaded_at,
        {{ run_timestamp() }} as dbt_updated_at
    from loads
    where {{ not_in_this('loaded_at', 'loads') }}
)

select * from final
