{#- Helpers of the behaviour marts (agg_paths_daily, agg_retention_weekly, fact_attribution),
    dispatched by adapter so the same models build on PostgreSQL and Spark, and a generic data
    test of theirs (not_null_exactly_when). -#}

{# an aggregate: the values of expression joined with separator in the order of order_by
   (one text per group) #}
{% macro join_in_order(expression, order_by, separator=' > ') -%}
    {{ return(adapter.dispatch('join_in_order', 'clickstream_analytics')(expression, order_by, separator)) }}
{%- endmacro %}

{% macro default__join_in_order(expression, order_by, separator) -%}
    string_agg({{ expression }}, '{{ separator }}' order by {{ order_by }})
{%- endmacro %}

{% macro spark__join_in_order(expression, order_by, separator) -%}
    array_join(
        transform(
            array_sort(collect_list(struct({{ order_by }} as sort_key, {{ expression }} as sort_value))),
            item -> item.sort_value
        ),
        '{{ separator }}'
    )
{%- endmacro %}

{# the Monday (ISO week start) of a date, as a date #}
{% macro week_start(expression) -%}
    {{ return(adapter.dispatch('week_start', 'clickstream_analytics')(expression)) }}
{%- endmacro %}

{% macro default__week_start(expression) -%}
    cast(date_trunc('week', {{ expression }}) as date)
{%- endmacro %}

{% macro spark__week_start(expression) -%}
    cast(date_trunc('WEEK', {{ expression }}) as date)
{%- endmacro %}

{# whole weeks from one week start (a Monday) to another, as an integer #}
{% macro weeks_between(start_week, end_week) -%}
    {{ return(adapter.dispatch('weeks_between', 'clickstream_analytics')(start_week, end_week)) }}
{%- endmacro %}

{% macro default__weeks_between(start_week, end_week) -%}
    cast(({{ end_week }} - {{ start_week }}) / 7 as integer)
{%- endmacro %}

{% macro spark__weeks_between(start_week, end_week) -%}
    cast(datediff({{ end_week }}, {{ start_week }}) div 7 as int)
{%- endmacro %}

{# the page type of a page path, for the journeys: home, product, category, or other #}
{% macro page_type(path) -%}
    case
        when {{ path }} = '/' then 'home'
        when {{ path }} like '/product/%' or {{ path }} like '/p/%' then 'product'
        when {{ path }} like '/category/%' or {{ path }} like '/c/%' then 'category'
        else 'other'
    end
{%- endmacro %}

{# a generic data test: the rows where column_name is null while condition holds, or not null
   while it does not (e.g. agg_paths_daily's purchase_path exactly when purchase_sessions > 0);
   portable SQL, so it runs on both engines #}
{% test not_null_exactly_when(model, column_name, condition) -%}
    select *
    from {{ model }}
    where
        case when {{ column_name }} is not null then 1 else 0 end
        != case when ({{ condition }}) then 1 else 0 end
{%- endtest %}
