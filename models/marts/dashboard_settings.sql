{#- One row per funnel step (var funnel_steps, in order): its label (var funnel_step_labels)
    and the source freshness thresholds (vars freshness_warn_after_hours and
    freshness_error_after_hours), the same on every row. The dashboards read their settings
    here, so the dbt project is their one source. A view. -#}
{{ config(materialized=view_materialization()) }}

{%- set labels = var('funnel_step_labels') %}

with

funnel_steps as (
    {% for step in var('funnel_steps') -%}
        select
            cast({{ loop.index }} as integer) as step_order,
            cast('{{ step }}' as {{ type_text() }}) as step_name,
            cast('{{ labels.get(step, step) | replace("'", "''") }}' as {{ type_text() }}) as step_label
        {% if not loop.last -%} union all {%- endif %}
    {% endfor %}
),

final as (
    select
        funnel_steps.step_order,
        funnel_steps.step_name,
        funnel_steps.step_label,
        cast({{ var('freshness_warn_after_hours') }} as integer) as freshness_warn_after_hours,
        cast({{ var('freshness_error_after_hours') }} as integer) as freshness_error_after_hours
    from funnel_steps
)

select * from final
