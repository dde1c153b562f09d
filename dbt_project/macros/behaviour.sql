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

{# Incremental behaviour marts recomputed by whole key values where every row of a key can
   vanish (a cohort week its only user leaves for an earlier one, an order date its only order
   leaves): delete+insert and insert_overwrite replace only the keys the new rows have, so a
   pre-hook first deletes every key the run recomputes (on PostgreSQL in the model's
   transaction; on Spark a commit of its own: a run killed after it recomputes the same keys).
   keys_sql: the select of those keys (the model filters on the same select); they are looked
   up through the model's index on column (in_short_list), not hashed against a scan of it.
   Usage: config(pre_hook="{{ delete_recomputed_keys('order_id', attribution_touched_orders()) }}") #}
{% macro delete_recomputed_keys(column, keys_sql) -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ in_short_list(column, keys_sql) }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{# int_retention_users post-hook: its current rows by cell, which agg_retention_weekly counts
   (an index-only count: the cell's key is the whole index) #}
{% macro ensure_retention_cell_index() -%}
    {{ ensure_indexes([
        {
            'columns': 'cohort_kind, cohort_week, device_type, traffic_source, weeks_since',
            'where': 'is_current',
            'indexdef': 'USING btree (cohort_kind, cohort_week, device_type, traffic_source, weeks_since) WHERE is_current',
        },
    ]) }}
{%- endmacro %}

{# agg_retention_weekly post-hook: the rows of cohorts its run left without a user (every user
   of the cohort moved to an earlier one, or was stitched to another user) #}
{% macro delete_emptied_cohorts() -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where cohort_users = 0
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{# agg_retention_weekly post-hook: int_retention_users' tombstones (rows a user no longer has)
   written up to this run, whose cells it has recounted #}
{% macro delete_read_tombstones(retention_users) -%}
    delete from {{ retention_users }}
    where not is_current and dbt_updated_at <= {{ run_timestamp() }}
{%- endmacro %}

{# fact_attribution's keys to recompute: the orders a rewritten session can change. A session
   S (new, late, grown, or moved to a user by a stitch) is a touch only of its user's orders
   whose purchasing session starts at or after S, so the orders are the purchases in the
   sessions of S's user that start at or after S (S itself included: its own purchases, whose
   user or first purchase may have changed). Orders, not dates: a returning buyer's session
   no longer recomputes every date that buyer ever bought on. Found through fact_sessions'
   user_key index and fact_events' index of purchases by session (ensure_indexes). #}
{% macro attribution_touched_orders() -%}
    {%- set later_sessions -%}
        select later_sessions.session_id
        from {{ ref('fact_sessions') }} as rewritten
        inner join {{ ref('fact_sessions') }} as later_sessions
            on
                rewritten.user_key = later_sessions.user_key
                and rewritten.session_start_at <= later_sessions.session_start_at
        where rewritten.dbt_updated_at > {{ run_watermark() }}
    {%- endset -%}
    {#- the sessions first (rewritten ones by the dbt_updated_at index, their users' later ones by
        the user_key index), then their purchases by the purchases-by-session index: as one
        join the planner guessed 289 purchases for all 56,469 of the history (two partial
        indexes' selectivities multiplied), read them all and joined them to the sessions (2.7 s
        a cycle at 10 days of 1 M/day) -#}
    select distinct user_purchases.order_id
    from {{ ref('fact_events') }} as user_purchases
    where
        user_purchases.event_name = 'purchase'
        and user_purchases.order_id is not null
        and {{ in_short_list('user_purchases.session_id', later_sessions) }}
{%- endmacro %}

{# fact_events post-hook: the purchases by order and by session (about 1 % of the events),
   which fact_attribution's increments look up #}
{% macro ensure_purchase_indexes() -%}
    {{ ensure_indexes([
        {
            'columns': 'order_id',
            'where': 'order_id is not null',
            'indexdef': 'USING btree (order_id) WHERE (order_id IS NOT NULL)',
        },
        {
            'columns': 'session_id',
            'where': "event_name = 'purchase'",
            'indexdef': "USING btree (session_id) WHERE (event_name = 'purchase'::text)",
        },
    ]) }}
{%- endmacro %}

{# fact_sessions post-hook: sessions by user, which the behaviour marts' increments look up #}
{% macro ensure_user_sessions_index() -%}
    {{ ensure_indexes([
        {'columns': 'user_key, session_start_at', 'indexdef': 'USING btree (user_key, session_start_at)'},
    ]) }}
{%- endmacro %}

{# int_user_sessions' keys to recompute: the sessions with events written or restated in
   fact_events since its last run #}
{% macro user_sessions_touched() -%}
    select changed_events.session_id
    from {{ ref('fact_events') }} as changed_events
    where changed_events.dbt_updated_at > {{ run_watermark() }}
    union
    {{ retired_sessions() }}
{%- endmacro %}

{# int_user_orders' keys to recompute: the orders with purchase events written or restated in
   fact_events since its last run #}
{% macro user_orders_touched() -%}
    select changed_events.order_id
    from {{ ref('fact_events') }} as changed_events
    where
        changed_events.dbt_updated_at > {{ run_watermark() }}
        and changed_events.event_name = 'purchase'
        and changed_events.order_id is not null
{%- endmacro %}

{# an aggregate: the values of expression as an array in the order of order_by (a list of
   expressions); nulls kept in place #}
{% macro array_in_order(expression, order_by) -%}
    {{ return(adapter.dispatch('array_in_order', 'clickstream_analytics')(expression, order_by)) }}
{%- endmacro %}

{% macro default__array_in_order(expression, order_by) -%}
    array_agg({{ expression }} order by {{ order_by | join(', ') }})
{%- endmacro %}

{% macro spark__array_in_order(expression, order_by) -%}
    transform(
        array_sort(collect_list(struct(struct({{ order_by | join(', ') }}) as sort_key, {{ expression }} as sort_value))),
        item -> item.sort_value
    )
{%- endmacro %}
