{#- JSON access, dispatched by adapter so the models stay portable.
    path is a list of keys, e.g. ['page', 'path']. -#}

{# the value at path as text (null when missing or JSON null) #}
{% macro json_text(column, path) -%}
    {{ return(adapter.dispatch('json_text', 'clickstream_analytics')(column, path)) }}
{%- endmacro %}

{% macro default__json_text(column, path) -%}
    json_extract_path_text({{ column }}, '{{ path | join("', '") }}')
{%- endmacro %}

{% macro postgres__json_text(column, path) -%}
    ({{ column }} #>> '{ {{- path | join(",") -}} }')
{%- endmacro %}

{# the value at path as JSON #}
{% macro json_value(column, path) -%}
    {{ return(adapter.dispatch('json_value', 'clickstream_analytics')(column, path)) }}
{%- endmacro %}

{% macro default__json_value(column, path) -%}
    json_extract_path({{ column }}, '{{ path | join("', '") }}')
{%- endmacro %}

{% macro postgres__json_value(column, path) -%}
    ({{ column }} #> '{ {{- path | join(",") -}} }')
{%- endmacro %}

{# the JSON type at path: object, array, string, number, boolean, null; sql null when missing #}
{% macro json_type(column, path) -%}
    {{ return(adapter.dispatch('json_type', 'clickstream_analytics')(column, path)) }}
{%- endmacro %}

{% macro default__json_type(column, path) -%}
    json_type(json_extract_path({{ column }}, '{{ path | join("', '") }}'))
{%- endmacro %}

{% macro postgres__json_type(column, path) -%}
    jsonb_typeof({{ column }} #> '{ {{- path | join(",") -}} }')
{%- endmacro %}

{# the type of a JSON expression (object, array, string, number, boolean, null) #}
{% macro json_typeof(expression) -%}
    {{ return(adapter.dispatch('json_typeof', 'clickstream_analytics')(expression)) }}
{%- endmacro %}

{% macro default__json_typeof(expression) -%}
    json_type({{ expression }})
{%- endmacro %}

{% macro postgres__json_typeof(expression) -%}
    jsonb_typeof({{ expression }})
{%- endmacro %}

{# a lateral table function turning a JSON array into rows with one column, value #}
{% macro json_array_rows(expression) -%}
    {{ return(adapter.dispatch('json_array_rows', 'clickstream_analytics')(expression)) }}
{%- endmacro %}

{% macro default__json_array_rows(expression) -%}
    json_array_elements({{ expression }})
{%- endmacro %}

{% macro postgres__json_array_rows(expression) -%}
    jsonb_array_elements({{ expression }})
{%- endmacro %}

{# the JSON data type of the warehouse #}
{% macro json_data_type() -%}
    {{ return(adapter.dispatch('json_data_type', 'clickstream_analytics')()) }}
{%- endmacro %}

{% macro default__json_data_type() -%}json{%- endmacro %}

{% macro postgres__json_data_type() -%}jsonb{%- endmacro %}
