{#- Custom schema names are used as they are (staging, intermediate, analytics), not
    prefixed with the target schema: the dashboards and psql rely on these names. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
