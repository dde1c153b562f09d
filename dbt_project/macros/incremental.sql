{#- Helpers shared by the incremental models. -#}

{# the raw-load watermark of an incremental model: its newest loaded_at minus the lookback
   (var incremental_lookback), so rows of a load that committed late are read again. While the
   model is empty the newest loaded_at of fallback_relation (if given) stands in, else everything. #}
{% macro loaded_at_watermark(relation=this, column='loaded_at', fallback_relation=none) -%}
    (
        select
            coalesce(
                {{ minus_interval(
                    'coalesce(max(' ~ column ~ ')'
                    ~ (', (select max(loaded_at) from ' ~ fallback_relation ~ ')' if fallback_relation else '')
                    ~ ')',
                    var('incremental_lookback')) }},
                {{ run_timestamp_floor() }}
            )
        from {{ relation }}
    )
{%- endmacro %}

{# the run watermark: the newest dbt_updated_at an incremental model has written; rows of an
   upstream model with a later dbt_updated_at were written (or restated) since. On an
   incremental run it is read when the model compiles (nothing else writes the model between
   its compilation and its run) and written as a literal: the planner then estimates a filter
   such as `dbt_updated_at > <literal>` from the column's index (a few thousand rows), where a
   subquery's value is unknown when planning and a third of the table is assumed. #}
{% macro run_watermark(relation=this) -%}
    {#- a unit test's `this` is its given rows (a string): the subquery form reads them -#}
    {%- if execute and is_incremental() and relation is not string -%}
        {%- set found = run_query(
            'select cast(max(dbt_updated_at) as ' ~ dbt.type_string() ~ ') from ' ~ relation
        ) -%}
        {%- set newest = found.columns[0].values()[0] if found.rows | length else none -%}
        {%- if newest is not none -%}
            {{ timestamp_literal(newest) }}
        {%- else -%}
            {{ run_timestamp_floor() }}
        {%- endif -%}
    {%- else -%}
        (select coalesce(max(dbt_updated_at), {{ run_timestamp_floor() }}) from {{ relation }})
    {%- endif -%}
{%- endmacro %}

{# the time this dbt invocation started, as a timestamp with time zone literal #}
{% macro run_timestamp() -%}
    {{ return(adapter.dispatch('run_timestamp', 'clickstream_analytics')()) }}
{%- endmacro %}

{% macro default__run_timestamp() -%}
    cast('{{ run_started_at.isoformat() }}' as {{ dbt.type_timestamp() }})
{%- endmacro %}

{% macro postgres__run_timestamp() -%}
    cast('{{ run_started_at.isoformat() }}' as timestamptz)
{%- endmacro %}

{% macro run_timestamp_floor() -%}
    {{ return(adapter.dispatch('run_timestamp_floor', 'clickstream_analytics')()) }}
{%- endmacro %}

{% macro default__run_timestamp_floor() -%}
    cast('1970-01-01 00:00:00' as {{ dbt.type_timestamp() }})
{%- endmacro %}

{% macro postgres__run_timestamp_floor() -%}
    cast('-infinity' as timestamptz)
{%- endmacro %}

{# dim_users pre-hook: guest rows (user_id null) whose anonymous_id has been stitched to a
   user since dim_users last ran; their events now belong to the user #}
{% macro delete_stitched_guests() -%}
    {%- if is_incremental() -%}
        delete from {{ this }} as guest
        where
            guest.user_id is null
            and guest.user_key in (
                select stitched.anonymous_id
                from {{ ref('int_users_stitched') }} as stitched
                where stitched.dbt_updated_at > {{ run_watermark() }}
            )
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{# incremental filter on raw lines: true for lines of loads (int_raw_loads) first seen after
   this model's last successful run (intermediate.dbt_incremental_runs, written by its post-hook),
   so a failed run's loads are read again next time. The list of loads is built once (an array
   from an init plan): the raw table's loaded_at index is used, whatever the history's size. #}
{% macro in_unprocessed_loads(column='loaded_at') -%}
    {%- set subquery -%}
        select raw_loads.loaded_at
        from {{ ref('int_raw_loads') }} as raw_loads
        where raw_loads.dbt_updated_at > coalesce(
            (
                select max(model_runs.last_run_started_at)
                from {{ incremental_runs_relation() }} as model_runs
                where model_runs.model_name = '{{ this.identifier }}'
            ),
            {{ run_timestamp_floor() }}
        )
    {%- endset -%}
    {{ in_short_list(column, subquery) }}
{%- endmacro %}

{% macro incremental_runs_relation() -%}
    intermediate.dbt_incremental_runs
{%- endmacro %}

{# on-run-start: the table of each incremental model's last successful run (two hooks:
   Spark runs one statement per hook) #}
{% macro create_incremental_runs_schema() -%}
    {{ return(adapter.dispatch('create_incremental_runs_schema', 'clickstream_analytics')()) }}
{%- endmacro %}

{% macro default__create_incremental_runs_schema() -%}
    create schema if not exists intermediate
{%- endmacro %}

{% macro spark__create_incremental_runs_schema() -%}
    create namespace if not exists intermediate
{%- endmacro %}

{% macro create_incremental_runs_table() -%}
    {{ return(adapter.dispatch('create_incremental_runs_table', 'clickstream_analytics')()) }}
{%- endmacro %}

{% macro default__create_incremental_runs_table() -%}
    create table if not exists {{ incremental_runs_relation() }} (
        model_name text primary key,
        last_run_started_at timestamptz not null
    )
{%- endmacro %}

{% macro spark__create_incremental_runs_table() -%}
    create table if not exists {{ incremental_runs_relation() }} (
        model_name string not null,
        last_run_started_at timestamp not null
    ) using iceberg
{%- endmacro %}

{# post-hook of the models filtered by in_unprocessed_loads: this run has processed its loads #}
{% macro record_incremental_run(model_name=none) -%}
    {{ return(adapter.dispatch('record_incremental_run', 'clickstream_analytics')(model_name or this.identifier)) }}
{%- endmacro %}

{% macro default__record_incremental_run(model_name) -%}
    insert into {{ incremental_runs_relation() }} (model_name, last_run_started_at)
    values ('{{ model_name }}', {{ run_timestamp() }})
    on conflict (model_name) do update set last_run_started_at = excluded.last_run_started_at
{%- endmacro %}

{# Spark: one row appended per successful run (readers take the newest): Iceberg appends from
   models built side by side (dbt threads) never conflict, where two MERGEs into the one small
   table would (copy-on-write rewrites its only file) #}
{% macro spark__record_incremental_run(model_name) -%}
    insert into {{ incremental_runs_relation() }} (model_name, last_run_started_at)
    values ('{{ model_name }}', {{ run_timestamp() }})
{%- endmacro %}

{# a filter condition that applies only to incremental runs ('true' on a full build) #}
{% macro when_incremental(condition) -%}
    {%- if is_incremental() -%}{{ condition }}{%- else -%}true{%- endif -%}
{%- endmacro %}

{# incremental runs: the row's key is not in the model yet ('true' on a full build) #}
{% macro not_in_this(column, alias) -%}
    {%- if is_incremental() -%}
        not exists (select 1 from {{ this }} as already_loaded where already_loaded.{{ column }} = {{ alias }}.{{ column }})
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}

{# column is one of the values a subquery returns: a semi-join, which the planner runs as an
   index look-up per key for a few keys and as a hash for many. (An array built from the
   subquery, `= any(array(...))`, compares every row with the whole array when no index
   applies: quadratic for a quarter of a million sessions.) The subquery's filters should be
   literals (run_watermark) so its size is estimated right. #}
{% macro in_subquery(column, subquery) -%}
    {{ column }} in ({{ subquery }})
{%- endmacro %}

{# column is one of the values a subquery returns, looked up through an index on column: a
   short list (the loads of a run: tens), or a cycle's keys (its touched sessions, users and
   orders: thousands) where the planner, guessing their number from the rows changed upstream,
   would rather hash them against a scan of the whole table. On postgres the list is built
   once (an array from an init plan) and the index on column is used whatever the planner
   guesses of the subquery: one index descent per key. Only for an indexed column: without an
   index each row would be compared with the whole array. #}
{% macro in_short_list(column, subquery) -%}
    {{ return(adapter.dispatch('in_short_list', 'clickstream_analytics')(column, subquery)) }}
{%- endmacro %}

{% macro default__in_short_list(column, subquery) -%}
    {{ column }} in ({{ subquery }})
{%- endmacro %}

{% macro postgres__in_short_list(column, subquery) -%}
    {{ column }} = any(array({{ subquery }}))
{%- endmacro %}

{# an incremental model's own column read from its existing table (alias.column), or a typed
   null while the table predates the column (an upgraded deployment: on_schema_change adds it
   in this run) #}
{% macro existing_column(alias, column, data_type) -%}
    {%- set readable = execute and this is not string -%}
    {%- set names = adapter.get_columns_in_relation(this) | map(attribute='name') | map('lower') | list if readable else [] -%}
    {%- if not readable or column in names -%}
        {{ alias }}.{{ column }}
    {%- else -%}
        cast(null as {{ data_type }})
    {%- endif -%}
{%- endmacro %}

{# post-hook of every table the ETL writes (dbt_project.yml): refresh the planner's statistics
   of the rows just written. A cycle's rows carry a dbt_updated_at no statistics know yet, so
   without it the next model's `dbt_updated_at > <watermark>` is estimated at one row and its
   joins become nested loops over thousands (a 1.3 s query took 34 s at 1 M events a day).
   ANALYZE samples a fixed number of rows, whatever the table's size. Views: nothing. #}
{% macro analyze_written_table() -%}
    {{ return(adapter.dispatch('analyze_written_table', 'clickstream_analytics')()) }}
{%- endmacro %}

{% macro default__analyze_written_table() -%}
{%- endmacro %}

{% macro postgres__analyze_written_table() -%}
    {%- if model.config.materialized in ('incremental', 'table') -%}
        analyze {{ this }}
    {%- endif -%}
{%- endmacro %}

{# post-hook: indexes the `indexes` config cannot state (partial ones), created on PostgreSQL
   when the table has none of that definition (also a table built before they were added).
   indexes: a list of {'columns': 'order_id', 'where': 'order_id is not null', 'indexdef': the
   end of its definition as pg_get_indexdef prints it, 'USING btree (order_id) WHERE (order_id
   IS NOT NULL)'}: the definition, not a name, says whether it exists (a full refresh renames
   the old table, whose index keeps its name until the old table is dropped). Spark: nothing. #}
{% macro ensure_indexes(indexes) -%}
    {{ return(adapter.dispatch('ensure_indexes', 'clickstream_analytics')(indexes)) }}
{%- endmacro %}

{% macro default__ensure_indexes(indexes) -%}
{%- endmacro %}

{% macro postgres__ensure_indexes(indexes) -%}
    do $ensure_indexes$
    begin
    {%- for index in indexes %}
        if not exists (
            select 1
            from pg_index as existing
            where
                existing.indrelid = '{{ this }}'::regclass
                and pg_get_indexdef(existing.indexrelid) like '%{{ index['indexdef'] | replace("'", "''") }}'
        ) then
            create index on {{ this }} ({{ index['columns'] }}){% if index.get('where') %} where {{ index['where'] }}{% endif %};
        end if;
    {%- endfor %}
    end
    $ensure_indexes$
{%- endmacro %}

{#- Additive aggregates (agg_events_hourly, the event counts of agg_product_daily) add the
    counts of the events inserted into fact_events since they last ran (inserted_at > their
    run watermark) to the cells they already hold, instead of recounting every touched hour or
    date: a cycle's cost follows its new events, whatever the history. Exact because an event
    is inserted once (a restatement keeps its inserted_at and changes no counted column) and
    such a model runs after fact_events in the same dbt invocation. One thing breaks it: a
    rebuild of fact_events on its own (`--full-refresh --select fact_events`), which gives
    every event a new inserted_at; fact_events records its full builds
    (record_full_build) and a model that ran before the newest one counts again from scratch
    (upstream_rebuilt_since_this, delete_all_when_upstream_rebuilt). -#}

{# post-hook: a full (not incremental) build of this model, recorded as '<model> (full build)'
   in the incremental runs table #}
{% macro record_full_build() -%}
    {%- if is_incremental() -%}
        select 1
    {%- else -%}
        {{ record_incremental_run(this.identifier ~ ' (full build)') }}
    {%- endif -%}
{%- endmacro %}

{# true on an incremental run when `upstream` (a model name) was built in full after this model
   last wrote a row: the counts this model holds are of rows that have been rewritten since.
   Read when the model compiles (and again when its pre-hook renders, before anything is written) #}
{% macro upstream_rebuilt_since_this(upstream) -%}
    {%- if not execute or not is_incremental() or this is string -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set found = run_query(
        "select count(*) from " ~ incremental_runs_relation() ~ " as full_builds"
        ~ " where full_builds.model_name = '" ~ upstream ~ " (full build)'"
        ~ " and full_builds.last_run_started_at > coalesce((select max(counted.dbt_updated_at) from "
        ~ this ~ " as counted), " ~ run_timestamp_floor() ~ ")"
    ) -%}
    {{ return(found.columns[0].values()[0] | int > 0) }}
{%- endmacro %}

{# pre-hook of an additive aggregate: everything goes when it counts again from scratch #}
{% macro delete_all_when_upstream_rebuilt(upstream) -%}
    {%- if upstream_rebuilt_since_this(upstream) -%}
        delete from {{ this }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{# agg_product_daily: the dates whose purchases it recounts (order items inserted, or orders
   rewritten with a new purchase, since its last run) #}
{% macro product_purchase_dates() -%}
    select distinct changed_items.ordered_date
    from {{ ref('fact_order_items') }} as changed_items
    where
        changed_items.dbt_updated_at > {{ run_watermark() }}
        and changed_items.inserted_at > {{ run_watermark() }}
{%- endmacro %}

{# agg_product_daily's pre-hook: on the dates whose purchases it recounts, the cells that hold
   purchases alone (no views, no adds to cart) go; the recount writes back those that still
   have purchases #}
{% macro delete_purchase_only_cells() -%}
    {%- if is_incremental() and not upstream_rebuilt_since_this('fact_events') -%}
        delete from {{ this }}
        where
            views = 0
            and add_to_carts = 0
            and event_date in ({{ product_purchase_dates() }})
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{# a filter condition of an additive aggregate: applied when it adds ('true' when it counts
   from scratch) #}
{% macro when_incremental_adding(adding, condition) -%}
    {%- if adding -%}{{ condition }}{%- else -%}true{%- endif -%}
{%- endmacro %}

{# the join condition of two relations on the same columns (an aggregate's cell key) #}
{% macro columns_equal(left, right, columns) -%}
    {%- for column in columns -%}
        {{ ' and ' if not loop.first }}{{ left }}.{{ column }} = {{ right }}.{{ column }}
    {%- endfor -%}
{%- endmacro %}
