{#- Data tests scoped to what an ETL cycle wrote. The 15-minute cycle (python -m loader load)
    runs `dbt build --vars '{test_scope: cycle}'`: every generic data test then reads only the
    rows written (dbt_updated_at) or loaded (loaded_at) since the start of the last build that
    succeeded, so a failure keeps showing until a build passes, and a cycle's tests cost what
    its rows cost. Rows of other relations a test looks up (a relationships test's parent) are
    read whole, through their indexes. PostgreSQL enforces the keys' uniqueness at insert time
    (the marts' unique indexes), which a test of new rows alone cannot see. Whole-history checks
    (tag full_scan, relationships of old rows) run in the daily full check (python -m loader
    check: dbt test, unscoped). Without the var (a dbt build by hand, the full check), tests
    read every row. -#}

{# dbt's get_where_subquery (the relation a generic test reads), with the cycle's scope added
   to the test's own `where` config. The scope goes first, and the test's own condition is
   bracketed only after it: Spark (non-ANSI) reads `from t where (is_valid)` as the table alias
   `where` naming one column, and fails on a relation of 51 columns. #}
{% macro get_where_subquery(relation) -%}
    {%- set conditions = [] -%}
    {%- set scope = test_scope_condition(relation) -%}
    {%- if scope -%}
        {%- do conditions.append(scope) -%}
    {%- endif -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- do conditions.append('(' ~ where ~ ')' if conditions else where) -%}
    {%- endif -%}
    {%- if conditions -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ conditions | join(' and ') ~ ') dbt_subquery') -%}
    {%- endif -%}
    {%- do return(relation) -%}
{%- endmacro %}

{# the condition that keeps a test on the rows the cycle wrote, or '' when tests are not
   scoped (no var test_scope, nothing built successfully yet, a relation without either column) #}
{% macro test_scope_condition(relation) -%}
    {%- if var('test_scope', none) != 'cycle' or not execute or relation is string -%}
        {%- do return('') -%}
    {%- endif -%}
    {%- set since = test_scope_since() -%}
    {%- if since is none -%}
        {%- do return('') -%}
    {%- endif -%}
    {%- set names = adapter.get_columns_in_relation(relation) | map(attribute='name') | map('lower') | list -%}
    {%- for column in ['dbt_updated_at', 'loaded_at'] -%}
        {%- if column in names -%}
            {%- do return(column ~ ' >= ' ~ timestamp_literal(since)) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- do return('') -%}
{%- endmacro %}

{# the start of the last dbt build that succeeded (raw.load_runs, written by the loader), or none #}
{% macro test_scope_since() -%}
    {%- set found = run_query(
        "select cast(max(dbt_started_at) as text) from raw.load_runs where dbt_status = 'success'"
    ) -%}
    {%- set since = found.columns[0].values()[0] if found and found.rows | length else none -%}
    {%- do return(since) -%}
{%- endmacro %}
