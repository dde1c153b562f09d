{#- Columns of the marts the dashboards' role may not read. The quarantine keeps each refused
    raw line whole (ids, the client's IP prefix): the dashboards see the reasons and the counts,
    never the payload. infra/warehouse/roles.sql applies the same rule in AWS. -#}

{% macro dashboard_reader_hidden_columns() -%}
    {{ return({'rejected_events': ['payload']}) }}
{%- endmacro %}

{# post-hook of a mart with hidden columns (inside the transaction that builds it, so a rebuilt
   table is never readable whole), and part of the on-run-end grants (grant_dashboard_reader) #}
{% macro hide_columns_from_dashboard_reader(schema_name, table_name) -%}
    {{ return(adapter.dispatch('hide_columns_from_dashboard_reader', 'clickstream_analytics')(schema_name, table_name)) }}
{%- endmacro %}

{% macro default__hide_columns_from_dashboard_reader(schema_name, table_name) -%}
    select 1
{%- endmacro %}

{% macro postgres__hide_columns_from_dashboard_reader(schema_name, table_name) -%}
do $$
begin
{{ dashboard_reader_column_grants(schema_name, table_name) }}
end
$$
{%- endmacro %}

{# a PL/pgSQL block: SELECT on every column but the hidden ones, in place of SELECT on the table
   (revoking the table's SELECT revokes its column grants too; new columns are granted) #}
{% macro dashboard_reader_column_grants(schema_name, table_name) -%}
{%- set role = var('dashboard_role') -%}
{%- set hidden = dashboard_reader_hidden_columns()[table_name] -%}
    declare
        visible_columns text;
    begin
        if to_regclass(format('%I.%I', '{{ schema_name }}', '{{ table_name }}')) is not null
            and exists (select from pg_roles where rolname = '{{ role }}') then
            select string_agg(quote_ident(attname), ', ' order by attnum) into visible_columns
            from pg_attribute
            where
                attrelid = format('%I.%I', '{{ schema_name }}', '{{ table_name }}')::regclass
                and attnum > 0
                and not attisdropped
                and attname not in ({% for column in hidden %}'{{ column }}'{{ ', ' if not loop.last }}{% endfor %});
            execute format('revoke select on %I.%I from %I', '{{ schema_name }}', '{{ table_name }}', '{{ role }}');
            if visible_columns is not null then
                execute format(
                    'grant select (%s) on %I.%I to %I',
                    visible_columns, '{{ schema_name }}', '{{ table_name }}', '{{ role }}'
                );
            end if;
        end if;
    end;
{%- endmacro %}
