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

{#- Spark: JSON values are VARIANT inside a query (parse_json), text in tables (to_json).
    A path is read with variant_get; its JSON type comes from schema_of_variant (VOID: JSON
    null). -#}

{# a JSON path for variant_get: $['page']['path'] #}
{% macro spark_json_path(path) -%}
    '${% for key in path %}[''{{ key }}'']{% endfor %}'
{%- endmacro %}

{% macro spark__json_text(column, path) -%}
    variant_get({{ column }}, {{ spark_json_path(path) }}, 'string')
{%- endmacro %}

{% macro spark__json_value(column, path) -%}
    variant_get({{ column }}, {{ spark_json_path(path) }})
{%- endmacro %}

{% macro spark__json_type(column, path) -%}
    {{ spark__json_typeof('variant_get(' ~ column ~ ', ' ~ spark_json_path(path) ~ ')') }}
{%- endmacro %}

{% macro spark__json_typeof(expression) -%}
    case
        when {{ expression }} is null then null
        else
            case split_part(schema_of_variant({{ expression }}), '<', 1)
                when 'VOID' then 'null'
                when 'OBJECT' then 'object'
                when 'ARRAY' then 'array'
                when 'STRING' then 'string'
                when 'BOOLEAN' then 'boolean'
                else 'number'
            end
    end
{%- endmacro %}

{# JSON text (as stored in a table) to the value queries work on: jsonb stays jsonb; on
   Spark a VARIANT #}
{% macro json_parse(expression) -%}
    {{ return(adapter.dispatch('json_parse', 'clickstream_analytics')(expression)) }}
{%- endmacro %}

{% macro default__json_parse(expression) -%}
    {{ expression }}
{%- endmacro %}

{% macro spark__json_parse(expression) -%}
    parse_json({{ expression }})
{%- endmacro %}

{# a JSON value to what a table stores: jsonb stays jsonb; on Spark its JSON text #}
{% macro json_to_text(expression) -%}
    {{ return(adapter.dispatch('json_to_text', 'clickstream_analytics')(expression)) }}
{%- endmacro %}

{% macro default__json_to_text(expression) -%}
    {{ expression }}
{%- endmacro %}

{% macro spark__json_to_text(expression) -%}
    to_json({{ expression }})
{%- endmacro %}

{# `from x <json_array_join(...)>`: one row per element of the JSON array in expression (as a
   table stores it), as alias.value, and alias.item_number (1-based) when with_ordinality #}
{% macro json_array_join(expression, alias, with_ordinality=false) -%}
    {{ return(adapter.dispatch('json_array_join', 'clickstream_analytics')(expression, alias, with_ordinality)) }}
{%- endmacro %}

{% macro default__json_array_join(expression, alias, with_ordinality=false) -%}
    cross join lateral {{ json_array_rows(expression) }}
    {%- if with_ordinality %} with ordinality as {{ alias }} (value, item_number)
    {%- else %} as {{ alias }} (value){% endif %}
{%- endmacro %}

{% macro spark__json_array_join(expression, alias, with_ordinality=false) -%}
    lateral view inline(
        transform(
            cast(parse_json({{ expression }}) as array<variant>),
            (element, element_index) -> named_struct('value', element, 'item_number', element_index + 1)
        )
    ) {{ alias }}
{%- endmacro %}

{% macro spark__json_data_type() -%}string{%- endmacro %}

{# whether any element of the JSON array at array_path has a number at field_path beyond
   +-bound (false when there is no such array): the contract's bounds on order items #}
{% macro json_items_beyond(column, array_path, field_path, bound) -%}
    {{ return(adapter.dispatch('json_items_beyond', 'clickstream_analytics')(column, array_path, field_path, bound)) }}
{%- endmacro %}

{% macro postgres__json_items_beyond(column, array_path, field_path, bound) -%}
    coalesce(
        {{ json_type(column, array_path) }} = 'array'
        and jsonb_path_exists(
            {{ column }},
            '$.{{ array_path | join(".") }}[*].{{ field_path | join(".") }} ? (@ > {{ bound }} || @ < -{{ bound }})'
        ),
        false
    )
{%- endmacro %}

{% macro spark__json_items_beyond(column, array_path, field_path, bound) -%}
    coalesce(
        {{ json_type(column, array_path) }} = 'array'
        and exists(
            try_variant_get({{ column }}, {{ spark_json_path(array_path) }}, 'array<variant>'),
            item -> coalesce(
                {{ spark__json_typeof('variant_get(item, ' ~ spark_json_path(field_path) ~ ')') }} = 'number'
                and abs(try_variant_get(item, {{ spark_json_path(field_path) }}, 'double')) > {{ bound }},
                false
            )
        ),
        false
    )
{%- endmacro %}
