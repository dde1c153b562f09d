{#- Text and number helpers, dispatched by adapter. -#}

{# regex match (pattern is a literal); case_insensitive for ~* #}
{% macro regex_matches(expression, pattern, case_insensitive=false) -%}
    {{ return(adapter.dispatch('regex_matches', 'clickstream_analytics')(expression, pattern, case_insensitive)) }}
{%- endmacro %}

{% macro default__regex_matches(expression, pattern, case_insensitive=false) -%}
    regexp_like({{ expression }}, '{{ pattern }}'{% if case_insensitive %}, 'i'{% endif %})
{%- endmacro %}

{% macro postgres__regex_matches(expression, pattern, case_insensitive=false) -%}
    ({{ expression }} {% if case_insensitive %}~*{% else %}~{% endif %} '{{ pattern }}')
{%- endmacro %}

{# a JSON number at path as numeric, null when it is not a number #}
{% macro json_number(column, path) -%}
    case
        when {{ json_type(column, path) }} = 'number'
            then cast({{ json_text(column, path) }} as {{ type_decimal() }})
    end
{%- endmacro %}

{# a JSON whole number at path as integer, null when it is not one (or too large) #}
{% macro json_integer(column, path) -%}
    case
        when
            {{ json_type(column, path) }} = 'number'
            and {{ regex_matches(json_text(column, path), '^-?[0-9]{1,9}$') }}
            then cast({{ json_text(column, path) }} as integer)
    end
{%- endmacro %}

{# a JSON string at path as text, null when it is not a string #}
{% macro json_string(column, path) -%}
    {{ return(adapter.dispatch('json_string', 'clickstream_analytics')(column, path)) }}
{%- endmacro %}

{% macro default__json_string(column, path) -%}
    case
        when {{ json_type(column, path) }} = 'string'
            then {{ json_text(column, path) }}
    end
{%- endmacro %}

{# Spark: one type look-up per value (staging reads ~40 per event: the full json_type
   case doubles the extraction's cost) #}
{% macro spark__json_string(column, path) -%}
    case
        when schema_of_variant(variant_get({{ column }}, {{ spark_json_path(path) }})) = 'STRING'
            then {{ json_text(column, path) }}
    end
{%- endmacro %}

{# true when the value at path is missing, null, or of one of the given JSON types #}
{% macro json_is_optional(column, path, types) -%}
    coalesce({{ json_type(column, path) }} in ('null', '{{ types | join("', '") }}'), true)
{%- endmacro %}

{% macro spark__regex_matches(expression, pattern, case_insensitive=false) -%}
    regexp_like({{ expression }}, r'{% if case_insensitive %}(?i){% endif %}{{ pattern }}')
{%- endmacro %}

{# the warehouse's types for decimal numbers and text: on Spark a bare decimal would be
   decimal(10,0) and round 1.55 to 2 #}
{% macro type_decimal() -%}
    {{ return(adapter.dispatch('type_decimal', 'clickstream_analytics')()) }}
{%- endmacro %}

{% macro default__type_decimal() -%}numeric{%- endmacro %}

{% macro spark__type_decimal() -%}decimal(38, 9){%- endmacro %}

{% macro type_text() -%}
    {{ return(adapter.dispatch('type_text', 'clickstream_analytics')()) }}
{%- endmacro %}

{% macro default__type_text() -%}text{%- endmacro %}

{% macro spark__type_text() -%}string{%- endmacro %}
