{#- Raw lines trimmed from raw.clickstream_events (python -m loader trim, RAW_TABLE_RETENTION_DAYS)
    live on in the bucket and in the marts, not in raw. A model that reads raw's history calls
    this at its top: a full build of it (--full-refresh, or the table dropped) while
    raw.trimmed_loads has rows would rebuild it from what raw still holds and drop the rest of
    the history, so it stops the build with what to do instead. Incremental runs go on, and so do
    unit tests (their inputs are fixtures, not raw). -#}
{% macro refuse_full_build_of_trimmed_raw() %}
    {%- if execute and target.type == 'postgres' and model.resource_type == 'model' and not is_incremental() -%}
        {%- set trims = adapter.get_relation(database=target.database, schema='raw', identifier='trimmed_loads') -%}
        {%- if trims is not none -%}
            {%- set found = run_query(
                "select count(*), min(loaded_at), max(loaded_at) from raw.trimmed_loads"
            ) -%}
            {%- set row = found.rows[0] -%}
            {%- if row[0] > 0 -%}
                {{ exceptions.raise_compiler_error(
                    "A full build of " ~ this.identifier ~ " would drop history: raw.clickstream_events no"
                    ~ " longer holds the lines of " ~ row[0] ~ " loads (loaded " ~ row[1] ~ " to " ~ row[2]
                    ~ ", trimmed after the marts held them: RAW_TABLE_RETENTION_DAYS). Copy them back from"
                    ~ " the bucket first: python -m loader restore, then build with --full-refresh."
                ) }}
            {%- endif -%}
        {%- endif -%}
    {%- endif -%}
{% endmacro %}

{#- The loads trimmed from raw: a relation with one column, loaded_at. None on Spark, nor
    before the loader has made raw.trimmed_loads (a warehouse the loader has not run on since). -#}
{% macro trimmed_raw_loads() %}
    {%- set trims = none -%}
    {%- if execute and target.type == 'postgres' -%}
        {%- set trims = adapter.get_relation(database=target.database, schema='raw', identifier='trimmed_loads') -%}
    {%- endif -%}
    {%- if trims is not none -%}
        (select loaded_at from {{ source('clickstream', 'trimmed_loads') }})
    {%- else -%}
        (select cast(null as {{ type_timestamp() }}) as loaded_at where 1 = 0)
    {%- endif -%}
{% endmacro %}

{#- Retention (RETENTION_MONTHS, python -m loader retention) dropped the months before the first
    day it keeps (the newest months_before of raw.retention_drops). A condition on a timestamp
    column: true for the moments retention keeps, so a late line of a month past retention does not
    bring that month back into fact_events, and the reconciliation with raw leaves such lines out.
    Always true on Spark and before the loader has made the table. -#}
{% macro kept_by_retention(column) %}
    {%- set drops = none -%}
    {%- if execute and target.type == 'postgres' and model.resource_type != 'unit_test' -%}
        {#- the relation itself, not source(): unit tests of a model need no input for it -#}
        {%- set drops = adapter.get_relation(database=target.database, schema='raw', identifier='retention_drops') -%}
    {%- endif -%}
    {%- if drops is not none -%}
        {{ column }} >= coalesce(
            (select max(retention.months_before) from {{ drops }} as retention)
            ::timestamp at time zone 'UTC',
            '-infinity'::timestamptz
        )
    {%- else -%}
        1 = 1
    {%- endif -%}
{% endmacro %}
