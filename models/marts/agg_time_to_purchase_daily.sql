{#- One row per session date, device type, traffic source and exact seconds_to_purchase
    (null for sessions without one): purchasing sessions, sessions that viewed a product, and
    of those the ones that started checkout (fact_funnels). Grouped by the exact value, so a
    median or quartile over any filter, weighted by purchase_sessions, equals the one over
    fact_funnels. Incremental: session dates with sessions whose facts changed (facts_changed_at) since
    the last run are recomputed whole. -#}

{{ config(
    pre_hook="{{ delete_moved_session_dates() }}",
    **replace_by_key_on_spark('session_date')
) }}

with

funnels as (
    select
        session_id,
        session_date,
        device_type,
        traffic_source,
        product_view_at,
        checkout_start_at,
        purchase_at,
        seconds_to_purchase,
        dbt_updated_at
    from {{ ref('fact_funnels') }}
),

{{ touched_keys(
    'touched_dates', ref('fact_funnels'), 'session_date',
    changed_column='facts_changed_at', also=moved_session_dates()
) }}

final as (
    select
        funnels.session_date,
        funnels.device_type,
        funnels.traffic_source,
        funnels.seconds_to_purchase,
        cast(count(funnels.purchase_at) as bigint) as purchase_sessions,
        cast(count(funnels.product_view_at) as bigint) as product_view_sessions,
        cast(
            count(*) filter (
                where funnels.product_view_at is not null and funnels.checkout_start_at is not null
            ) as bigint
        ) as product_view_to_checkout_sessions,
        {{ run_timestamp() }} as dbt_updated_at
    from funnels
    where {{ in_touched_keys('touched_dates', 'funnels.session_date') }}
    group by 1, 2, 3, 4
)

select * from final
