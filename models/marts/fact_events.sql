{#- One row per distinct valid event (bots left out unless var exclude_bots is false).
    A resent event collapses to its first loaded copy. Incremental on loaded_at with a lookback:
    raw rows loaded since the watermark are read, event_ids already present are skipped, so a
    late or repeated event counts once. Rows already present are restated when their user_key
    (a new identity stitch) or their product's attributes (dim_products) changed in this run:
    dbt_updated_at says when a row was last written, inserted_at when it was first (a restated
    row keeps it), so a model that reads neither user_key nor product attributes follows the
    new events alone. -#}
{%- set event_columns = [
    'event_id', 'event_name', 'event_at', 'session_id', 'anonymous_id', 'user_id',
    'product_id', 'quantity', 'order_id', 'order_revenue', 'order_items', 'search_query',
    'page_url', 'page_path', 'page_referrer', 'device_type', 'traffic_source', 'traffic_medium',
    'traffic_campaign', 'received_at', 'loaded_at', 'is_bot', 'is_client_clock_ahead',
    'is_known_event_name',
] -%}
{#- On PostgreSQL the delete+insert matches on (event_id, event_date): each key then reads one
    month partition (run-time pruning) instead of probing every month's index. -#}
{{ config(
    unique_key=(['event_id', 'event_date'] if target.type == 'postgres' else 'event_id'),
    post_hook=[
    "{{ maintain_month_partitions() }}",
    "{{ record_incremental_run() }}",
    "{{ record_full_build() }}",
    "{{ ensure_purchase_indexes() }}",
],
) }}
-- depends_on: {{ ref('int_raw_loads') }}

{{ refuse_full_build_of_trimmed_raw() }}
with

staged_events as (
    select
        {% for column in event_columns -%}
            {{ column }},
        {% endfor -%}
        bucket,
        object_key,
        line_number
    from {{ ref('stg_clickstream__events') }}
    where
        is_valid
        and {{ when_incremental(in_unprocessed_loads()) }}
        and {{ kept_by_retention('event_at') }}
),

users_stitched as (
    select
        anonymous_id,
        user_id,
        dbt_updated_at
    from {{ ref('int_users_stitched') }}
),

products as (
    select
        product_id,
        product_name,
        product_category,
        product_brand,
        product_price,
        attributes_changed_at
    from {{ ref('dim_products') }}
),

ranked_copies as (
    select
        staged_events.*,
        row_number() over (
            partition by staged_events.event_id
            order by
                staged_events.loaded_at,
                staged_events.bucket,
                staged_events.object_key,
                staged_events.line_number
        ) as copy_number
    from staged_events
),

new_events as (
    select
        {% for column in event_columns -%}
            ranked_copies.{{ column }},
        {% endfor -%}
        {{ run_timestamp() }} as inserted_at
    from ranked_copies
    where
        ranked_copies.copy_number = 1
        {% if var('exclude_bots') -%}
            and not ranked_copies.is_bot
        {%- endif %}
        and {{ not_in_this('event_id', 'ranked_copies') }}
),

{% if is_incremental() %}
    restated_events as (
        select
            {% for column in event_columns -%}
                already_loaded.{{ column }},
            {% endfor -%}
            {{ existing_column('already_loaded', 'inserted_at', dbt.type_timestamp()) }} as inserted_at
        from {{ this }} as already_loaded
        where
            {#- the models themselves, not the import CTEs: a second reference would materialise them.
                Two short lists (in_short_list: a run's new stitches and changed products): the
                planner ORs the anonymous_id and product_id indexes (BitmapOr) instead of
                scanning every event already loaded. #}
            {{ in_short_list(
                'already_loaded.anonymous_id',
                'select new_stitches.anonymous_id from ' ~ ref('int_users_stitched') ~ ' as new_stitches'
                ~ ' where new_stitches.dbt_updated_at > ' ~ run_watermark()
            ) }}
            or {{ in_short_list(
                'already_loaded.product_id',
                'select changed_products.product_id from ' ~ ref('dim_products') ~ ' as changed_products'
                ~ ' where changed_products.attributes_changed_at > ' ~ run_watermark()
            ) }}
    ),

    events_to_write as (
        select * from new_events
        union all
        select * from restated_events
    ),
{% else %}
    events_to_write as (
        select * from new_events
    ),
{% endif %}

events_joined_to_users_and_products as (
    select
        events_to_write.event_id,
        events_to_write.event_name,
        events_to_write.event_at,
        {{ utc_date('events_to_write.event_at') }} as event_date,
        events_to_write.session_id,
        events_to_write.anonymous_id,
        events_to_write.user_id,
        coalesce(events_to_write.user_id, users_stitched.user_id, events_to_write.anonymous_id) as user_key,
        events_to_write.product_id,
        products.product_name,
        products.product_category,
        products.product_brand,
        products.product_price,
        events_to_write.quantity,
        events_to_write.order_id,
        events_to_write.order_revenue,
        events_to_write.search_query,
        events_to_write.page_path,
        events_to_write.page_referrer,
        events_to_write.device_type,
        events_to_write.traffic_source,
        events_to_write.traffic_medium,
        events_to_write.traffic_campaign,
        events_to_write.received_at,
        events_to_write.loaded_at,
        events_to_write.page_url,
        events_to_write.order_items,
        events_to_write.is_bot,
        events_to_write.is_client_clock_ahead,
        events_to_write.is_known_event_name,
        events_to_write.inserted_at,
        {{ run_timestamp() }} as dbt_updated_at
    from events_to_write
    left join users_stitched
        on events_to_write.anonymous_id = users_stitched.anonymous_id
    left join products
        on events_to_write.product_id = products.product_id
),

final as (
    select * from events_joined_to_users_and_products
)

select * from final
