{#- Monthly partitions for the event-grain marts on PostgreSQL (dbt-postgres has no partition_by).
    A model opts in with config partition_by_month: '<date or timestamptz column>' (it needs an
    enforced contract, which gives the column list). Its table is then partitioned by range on
    that column, one partition per UTC month plus a default one, made and kept by
    raw.ensure_month_partitions (loader/schema.sql). A full build creates the parent, inserts
    (the rows of months without a partition land in the default one), then moves each such month
    into a partition of its own, before dbt creates the indexes; every incremental run
    (post-hook maintain_month_partitions) creates this month's and next month's partitions ahead
    of their rows and moves whatever the default partition took. RETENTION_MONTHS drops whole old
    partitions (python -m loader retention). Unique indexes must include the partition column.
    On Spark the models are Iceberg tables and none of this applies. -#}
{% macro postgres__create_table_as(temporary, relation, sql) -%}
    {%- set partition_column = config.get('partition_by_month') -%}
    {%- set contract_config = config.get('contract') -%}
    {%- if temporary or not partition_column or not contract_config.enforced -%}
        {{ dbt.postgres__create_table_as(temporary, relation, sql) }}
    {%- else -%}
        {{ get_assert_columns_equivalent(sql) }}
        create table {{ relation }}
        {{ get_table_columns_and_constraints() }}
        partition by range ({{ partition_column }});
        select raw.ensure_month_partitions(
            '{{ relation }}', '{{ partition_column }}', '{{ model.name }}', false
        );
        insert into {{ relation }} (
            {{ adapter.dispatch('get_column_names', 'dbt')() }}
        )
        (
            {{ get_select_subquery(sql) }}
        );
        select raw.ensure_month_partitions(
            '{{ relation }}', '{{ partition_column }}', '{{ model.name }}', true
        )
    {%- endif -%}
{%- endmacro %}

{#- post-hook of a model with partition_by_month: on an incremental run, the months ahead and
    the rows the default partition took (see above). A table built before the model was
    partitioned becomes, as it is, the default partition of a new partitioned table (no row is
    rewritten; the indexes of the config are made on the new parent), so an upgrade needs no full
    refresh (which a trimmed raw table would refuse); its months stay in the default partition,
    and retention deletes their rows instead of dropping partitions. -#}
{% macro maintain_month_partitions() -%}
    {{ return(adapter.dispatch('maintain_month_partitions', 'clickstream_analytics')()) }}
{%- endmacro %}

{% macro default__maintain_month_partitions() -%}
{%- endmacro %}

{% macro postgres__maintain_month_partitions() -%}
    {%- set partition_column = config.get('partition_by_month') -%}
    {%- if not execute or not partition_column -%}
        select 1
    {%- elif not is_incremental() -%}
        {#- a full build made its partitions in create_table_as -#}
        select 1
    {%- else -%}
        {%- set kind = run_query(
            "select relkind from pg_class where oid = to_regclass('" ~ this ~ "')"
        ).columns[0].values() -%}
        {%- if kind and kind[0] == 'r' -%}
            {%- set legacy = this.identifier ~ '_unpartitioned' -%}
            alter table {{ this }} rename to {{ adapter.quote(legacy) }};
            create table {{ this }} (
                like {{ this.schema }}.{{ adapter.quote(legacy) }} including defaults including constraints
            ) partition by range ({{ partition_column }});
            alter table {{ this }} attach partition {{ this.schema }}.{{ adapter.quote(legacy) }} default;
            {%- for index in config.get('indexes', default=[]) %}
                {{ get_create_index_sql(this, index) }};
            {%- endfor %}
            select raw.ensure_month_partitions('{{ this }}', '{{ partition_column }}', '{{ model.name }}', false)
        {%- else -%}
            select raw.ensure_month_partitions('{{ this }}', '{{ partition_column }}', '{{ model.name }}', true)
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{# BRIN upkeep (raw.summarize_new_ranges, loader/schema.sql): the page ranges written since the
   last call get their summaries, so a BRIN scan of a cycle's loaded_at window or of a few dates
   reads those pages, not every page autovacuum has not summarized yet (days of raw at 1 M
   events a day). on-run-start: raw.clickstream_events; fact_events' post-hook: itself. #}
{% macro summarize_new_brin_ranges(relation=none) -%}
    {{ return(adapter.dispatch('summarize_new_brin_ranges', 'clickstream_analytics')(relation)) }}
{%- endmacro %}

{% macro default__summarize_new_brin_ranges(relation) -%}
    select 1
{%- endmacro %}

{% macro postgres__summarize_new_brin_ranges(relation) -%}
    {%- set relation_name = relation if relation is not none else 'raw.clickstream_events' -%}
    do $summarize_brin$
    begin
        if
            to_regprocedure('raw.summarize_new_ranges(regclass)') is not null
            and to_regclass('{{ relation_name }}') is not null
        then
            perform raw.summarize_new_ranges(to_regclass('{{ relation_name }}'));
        end if;
    end
    $summarize_brin$
{%- endmacro %}
