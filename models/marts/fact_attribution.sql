{#- One row per order, attribution model and channel (traffic source, medium, campaign): the
    share of the order credited to that channel. The touches of an order are the sessions of
    the purchasing session's user (stitched user_key) that started within var
    attribution_lookback_days before the purchase, up to and including the purchasing
    session; sessions without a source count as (direct), as in fact_events.
    - first_touch: all credit to the earliest touch; last_touch: to the purchasing session;
    - linear: an equal share to every touch (rounded to 6 decimals, money to cents; the last
      touch takes the rest, so each order's credits sum to exactly 1 and its revenue).
    Incremental by order: the orders a session rewritten in fact_sessions since the last run
    can change (a new or late session, a stitched identity: macro attribution_touched_orders,
    the purchases in that user's sessions from that session on) are recomputed whole; a
    pre-hook deletes their rows first, and the recomputed rows are appended (the same on both
    engines), so the work follows the touched orders, never whole dates. -#}
{{ config(
    pre_hook="{{ delete_recomputed_keys('order_id', attribution_touched_orders()) }}",
    incremental_strategy='append',
) }}
{%- set lookback = var('attribution_lookback_days') | int -%}

with

{% if is_incremental() -%}
    touched_orders as (
        {{ attribution_touched_orders() }}
    ),
{%- endif %}

purchases as (
    select
        event_id,
        event_at,
        session_id,
        order_id,
        order_revenue
    from {{ ref('fact_events') }}
    where
        event_name = 'purchase'
        and order_id is not null
        and {{ when_incremental(in_short_list('order_id', 'select touched_orders.order_id from touched_orders')) }}
),

first_purchase_of_each_order as (
    select
        purchases.*,
        row_number() over (
            partition by purchases.order_id
            order by purchases.event_at, purchases.event_id
        ) as purchase_number
    from purchases
),

{# the sessions of the orders' buyers (all of them on a full build): the touches and the
    purchasing sessions are among them #}
sessions as (
    select
        session_id,
        user_key,
        session_start_at,
        device_type,
        traffic_source,
        traffic_medium,
        traffic_campaign
    from {{ ref('fact_sessions') }}
    where
        {{ when_incremental(
            'user_key in (select buying_sessions.user_key from ' ~ ref('fact_sessions') ~ ' as buying_sessions'
            ~ ' where buying_sessions.session_id in (select purchases.session_id from purchases))'
        ) }}
),

orders as (
    select
        first_purchase_of_each_order.order_id,
        first_purchase_of_each_order.event_at as ordered_at,
        coalesce(first_purchase_of_each_order.order_revenue, 0) as revenue,
        sessions.user_key,
        sessions.device_type,
        sessions.session_id as purchase_session_id,
        sessions.session_start_at as purchase_session_start_at
    from first_purchase_of_each_order
    inner join sessions
        on first_purchase_of_each_order.session_id = sessions.session_id
    where first_purchase_of_each_order.purchase_number = 1
),

touches as (
    select
        orders.order_id,
        orders.user_key,
        orders.ordered_at,
        orders.device_type,
        orders.revenue,
        sessions.session_id,
        sessions.traffic_source,
        sessions.traffic_medium,
        sessions.traffic_campaign,
        row_number() over (
            partition by orders.order_id
            order by sessions.session_start_at, sessions.session_id
        ) as touch_number,
        count(*) over (partition by orders.order_id) as touches
    from orders
    inner join sessions
        on
            orders.user_key = sessions.user_key
            and (
                orders.purchase_session_id = sessions.session_id
                or (
                    orders.purchase_session_start_at >= sessions.session_start_at
                    and {{ minus_interval('orders.ordered_at', lookback ~ ' days') }} <= sessions.session_start_at
                )
            )
),

credited_touches as (
    select
        touches.*,
        'first_touch' as model,  -- noqa: RF04
        case when touches.touch_number = 1 then 1 else 0 end as credit_share,
        case when touches.touch_number = 1 then touches.revenue else 0 end as revenue_share
    from touches
    union all
    select
        touches.*,
        'last_touch' as model,  -- noqa: RF04
        case when touches.touch_number = touches.touches then 1 else 0 end as credit_share,
        case when touches.touch_number = touches.touches then touches.revenue else 0 end as revenue_share
    from touches
    union all
    select
        touches.*,
        'linear' as model,  -- noqa: RF04
        case
            when touches.touch_number = touches.touches
                then 1 - (touches.touches - 1) * round(cast(1 as {{ type_decimal() }}) / touches.touches, 6)
            else round(cast(1 as {{ type_decimal() }}) / touches.touches, 6)
        end as credit_share,
        case
            when touches.touch_number = touches.touches
                then touches.revenue - (touches.touches - 1) * round(touches.revenue / touches.touches, 2)
            else round(touches.revenue / touches.touches, 2)
        end as revenue_share
    from touches
),

final as (
    select
        credited_touches.order_id,
        credited_touches.user_key,
        credited_touches.model,
        credited_touches.traffic_source,
        credited_touches.traffic_medium,
        credited_touches.traffic_campaign,
        {{ utc_date('credited_touches.ordered_at') }} as order_date,
        credited_touches.device_type,
        cast(count(*) as integer) as touches,
        cast(sum(credited_touches.credit_share) as {{ type_decimal() }}) as credit,
        cast(sum(credited_touches.revenue_share) as {{ type_decimal() }}) as revenue_credit,
        {{ run_timestamp() }} as dbt_updated_at
    from credited_touches
    group by 1, 2, 3, 4, 5, 6, 7, 8
    having sum(credited_touches.credit_share) > 0
)

select * from final
