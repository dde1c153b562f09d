{#- One row per UTC date, product, device type and traffic source: product views and adds to
    cart (fact_events), units purchased, orders and revenue (fact_order_items). Incremental:
    views and adds to cart are additive (macro record_full_build): the events inserted since
    the last run are counted per cell and added to the cells' counts, so a late view costs its
    cell, not its whole date. Purchases are recounted for the dates with order items inserted
    (or orders rewritten) since the last run, from fact_order_items (a day's order items, not
    its events); the pre-hook first removes those dates' cells that held purchases alone. A
    restatement changes no column counted here. After a rebuild of fact_events alone it
    counts everything again. -#}
{%- set cell = ['event_date', 'product_id', 'device_type', 'traffic_source'] -%}
{%- set adding = is_incremental() and not upstream_rebuilt_since_this('fact_events') -%}

{{ config(
    unique_key=cell,
    pre_hook=[
        "{{ delete_all_when_upstream_rebuilt('fact_events') }}",
        "{{ delete_purchase_only_cells() }}",
    ],
) }}

with

events as (
    select
        event_name,
        event_date,
        product_id,
        device_type,
        traffic_source
    from {{ ref('fact_events') }}
    {# a row's inserted_at is never after its dbt_updated_at: the latter's index finds the new rows #}
    where
        product_id is not null
        and event_name in ('product_view', 'add_to_cart')
        and {{ when_incremental_adding(adding, 'dbt_updated_at > ' ~ run_watermark()) }}
        and {{ when_incremental_adding(adding, 'inserted_at > ' ~ run_watermark()) }}
),

order_items as (
    select
        order_id,
        product_id,
        quantity,
        item_revenue,
        ordered_date,
        device_type,
        traffic_source
    from {{ ref('fact_order_items') }}
    {% if adding -%}
        where ordered_date in ({{ product_purchase_dates() }})
    {%- endif %}
),

new_event_counts as (
    select
        events.event_date,
        events.product_id,
        events.device_type,
        events.traffic_source,
        sum(case when events.event_name = 'product_view' then 1 else 0 end) as views,
        sum(case when events.event_name = 'add_to_cart' then 1 else 0 end) as add_to_carts
    from events
    group by 1, 2, 3, 4
),

purchase_counts as (
    select
        order_items.ordered_date as event_date,
        order_items.product_id,
        order_items.device_type,
        order_items.traffic_source,
        sum(order_items.quantity) as purchases,
        count(distinct order_items.order_id) as orders,
        sum(order_items.item_revenue) as revenue
    from order_items
    group by 1, 2, 3, 4
),

{% if adding -%}
    purchase_dates as (
        {{ product_purchase_dates() }}
    ),

    {#- the cells this run changes, as counted so far: those with new views or adds to cart, and
        every cell of a date whose purchases are recounted -#}
    counted as (
        {% for recounted in [true, false] -%}
            {% if not loop.first %}union all{% endif %}
            select
                already_counted.*,
                {{ 1 if recounted else 0 }} as purchases_recounted
            from {{ this }} as already_counted
            {% if recounted -%}
                where already_counted.event_date in (select purchase_dates.ordered_date from purchase_dates)
            {%- else -%}
                inner join new_event_counts
                    on {{ columns_equal('already_counted', 'new_event_counts', cell) }}
                where already_counted.event_date not in (select purchase_dates.ordered_date from purchase_dates)
            {%- endif %}
        {% endfor %}
    ),

    cells as (
        select event_date, product_id, device_type, traffic_source from counted
        union
        select event_date, product_id, device_type, traffic_source from new_event_counts
        union
        select event_date, product_id, device_type, traffic_source from purchase_counts
    ),

    final as (
        select
            cells.event_date,
            cells.product_id,
            cells.device_type,
            cells.traffic_source,
            cast(coalesce(counted.views, 0) + coalesce(new_event_counts.views, 0) as bigint) as views,
            cast(coalesce(counted.add_to_carts, 0) + coalesce(new_event_counts.add_to_carts, 0) as bigint)
                as add_to_carts,
            {#- a cell of a date not recounted keeps its purchases (it has no new order items) -#}
            cast(
                case
                    when counted.purchases_recounted = 0 then counted.purchases
                    else coalesce(purchase_counts.purchases, 0)
                end as bigint
            ) as purchases,
            cast(
                case
                    when counted.purchases_recounted = 0 then counted.orders
                    else coalesce(purchase_counts.orders, 0)
                end as bigint
            ) as orders,
            case
                when counted.purchases_recounted = 0 then counted.revenue
                else coalesce(purchase_counts.revenue, 0)
            end as revenue,
            {{ run_timestamp() }} as dbt_updated_at
        from cells
        left join counted
            on {{ columns_equal('cells', 'counted', cell) }}
        left join new_event_counts
            on {{ columns_equal('cells', 'new_event_counts', cell) }}
        left join purchase_counts
            on {{ columns_equal('cells', 'purchase_counts', cell) }}
    )
{%- else -%}
    final as (
        select
            coalesce(new_event_counts.event_date, purchase_counts.event_date) as event_date,
            coalesce(new_event_counts.product_id, purchase_counts.product_id) as product_id,
            coalesce(new_event_counts.device_type, purchase_counts.device_type) as device_type,
            coalesce(new_event_counts.traffic_source, purchase_counts.traffic_source) as traffic_source,
            cast(coalesce(new_event_counts.views, 0) as bigint) as views,
            cast(coalesce(new_event_counts.add_to_carts, 0) as bigint) as add_to_carts,
            cast(coalesce(purchase_counts.purchases, 0) as bigint) as purchases,
            cast(coalesce(purchase_counts.orders, 0) as bigint) as orders,
            coalesce(purchase_counts.revenue, 0) as revenue,
            {{ run_timestamp() }} as dbt_updated_at
        from new_event_counts
        full outer join purchase_counts
            on {{ columns_equal('new_event_counts', 'purchase_counts', cell) }}
    )
{%- endif %}

select * from final
