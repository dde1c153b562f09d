{#- Model configs that differ by engine, so one model file serves PostgreSQL and Spark. -#}

{# a view on PostgreSQL; on Spark a table (the Iceberg catalog keeps no views) #}
{% macro view_materialization() -%}
    {{ return('table' if target.type == 'spark' else 'view') }}
{%- endmacro %}

{# the incremental strategy: delete+insert on PostgreSQL, merge on Spark (Iceberg) #}
{% macro keyed_incremental_strategy() -%}
    {{ return('merge' if target.type == 'spark' else 'delete+insert') }}
{%- endmacro %}

{# configs of a model recomputed by whole key values (a date, an hour) with delete+insert on
   PostgreSQL: on Spark the table is partitioned by that key and a run replaces the partitions
   it recomputed (insert_overwrite, Iceberg's dynamic partition overwrite: atomic, and a key
   value whose rows changed loses its old rows as delete+insert does). Usage:
   {{ config(**replace_by_key_on_spark('event_date')) }} #}
{% macro replace_by_key_on_spark(key) -%}
    {%- if target.type == 'spark' -%}
        {{ return({'incremental_strategy': 'insert_overwrite', 'partition_by': [key]}) }}
    {%- else -%}
        {#- config() refuses no arguments: the project's default, stated -#}
        {{ return({'incremental_strategy': 'delete+insert'}) }}
    {%- endif -%}
{%- endmacro %}

{# configs of a model whose delete+insert key is coarser than its rows (fact_order_items: an
   order's items): on Spark it merges on the row's full key #}
{% macro merge_key_on_spark(columns) -%}
    {%- if target.type == 'spark' -%}
        {{ return({'unique_key': columns}) }}
    {%- else -%}
        {{ return({'incremental_strategy': 'delete+insert'}) }}
    {%- endif -%}
{%- endmacro %}
