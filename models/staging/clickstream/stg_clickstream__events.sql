{#- One row per raw event line: every contract field as a typed column, normalised names,
    bot and clock flags, and the contract check (invalid_reason is null for a valid event).
    Row by row only (no joins, no window functions), so a filter on loaded_at reaches the
    raw table's index. Casts happen only after a regex check: a bad value never fails a build.
    The contract's x-limits hold here as at the ingest endpoint (vars max_clock_ahead_seconds,
    max_event_age_days, max_abs_amount, max_abs_count): an event dated far from the time it
    was received, or with an amount the marts' sums cannot carry, is quarantined with its
    reason and never reaches fact_events (whose month partitions follow event_at). -#}
{%- set p = 'raw_events.payload' -%}
{%- set uuid_pattern = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' -%}

with

raw_events as (
    select
        {{ json_parse('payload') }} as payload,
        bucket,
        object_key,
        line_number,
        load_id,
        loaded_at
    from {{ source('clickstream', 'clickstream_events') }}
    {#- Spark (an incremental table): the raw lines loaded since the last run; PostgreSQL (a view)
        reads all. While the table is empty (a first build before any traffic) every line is new:
        max() of no rows is null, and `loaded_at > null` would keep nothing, then or ever. -#}
    {% if is_incremental() %}
        where loaded_at > (
            select coalesce(max(already_staged.loaded_at), {{ run_timestamp_floor() }})
            from {{ this }} as already_staged
        )
    {% endif %}
),

extracted as (
    select
        raw_events.bucket,
        raw_events.object_key,
        raw_events.line_number,
        raw_events.load_id,
        raw_events.loaded_at,
        raw_events.payload,
        {{ json_typeof(p) }} as payload_type,
        {{ json_string(p, ['event_id']) }} as event_id,
        {{ json_string(p, ['event_name']) }} as event_name_raw,
        {{ json_string(p, ['event_timestamp']) }} as event_timestamp,
        {{ json_string(p, ['received_at']) }} as received_at_raw,
        {{ json_string(p, ['anonymous_id']) }} as anonymous_id,
        {{ json_string(p, ['session_id']) }} as session_id,
        {{ json_string(p, ['user_id']) }} as user_id,
        {{ json_text(p, ['schema_version']) }} as schema_version,
        {{ json_string(p, ['page', 'url']) }} as page_url,
        {{ json_string(p, ['page', 'path']) }} as page_path,
        {{ json_string(p, ['page', 'title']) }} as page_title,
        {{ json_string(p, ['page', 'referrer']) }} as page_referrer,
        {{ json_string(p, ['device', 'type']) }} as device_type_raw,
        {{ json_string(p, ['device', 'user_agent']) }} as device_user_agent,
        {{ json_string(p, ['device', 'os']) }} as device_os,
        {{ json_string(p, ['device', 'browser']) }} as device_browser,
        {{ json_string(p, ['device', 'screen']) }} as device_screen,
        {{ json_string(p, ['traffic', 'source']) }} as traffic_source_raw,
        {{ json_string(p, ['traffic', 'medium']) }} as traffic_medium_raw,
        {{ json_string(p, ['traffic', 'campaign']) }} as traffic_campaign,
        {{ json_string(p, ['traffic', 'content']) }} as traffic_content,
        {{ json_string(p, ['traffic', 'term']) }} as traffic_term,
        {{ json_string(p, ['product', 'id']) }} as product_id,
        {{ json_string(p, ['product', 'name']) }} as product_name,
        {{ json_string(p, ['product', 'category']) }} as product_category,
        {{ json_string(p, ['product', 'brand']) }} as product_brand,
        {{ json_number(p, ['product', 'price']) }} as product_price,
        {{ json_string(p, ['product', 'currency']) }} as product_currency,
        {{ json_integer(p, ['quantity']) }} as quantity,
        {{ json_string(p, ['cart', 'cart_id']) }} as cart_id,
        {{ json_number(p, ['cart', 'value']) }} as cart_value,
        {{ json_string(p, ['cart', 'currency']) }} as cart_currency,
        {{ json_string(p, ['order', 'order_id']) }} as order_id,
        {{ json_number(p, ['order', 'revenue']) }} as order_revenue,
        {{ json_string(p, ['order', 'currency']) }} as order_currency,
        case
            when {{ json_type(p, ['order', 'items']) }} = 'array'
                then {{ json_to_text(json_value(p, ['order', 'items'])) }}
        end as order_items,
        {{ json_string(p, ['search', 'query']) }} as search_query,
        {{ json_integer(p, ['search', 'results_count']) }} as search_results_count,
        case
            when {{ json_type(p, ['properties']) }} = 'object'
                then {{ json_to_text(json_value(p, ['properties'])) }}
        end as properties,
        {{ json_type(p, ['event_id']) }} as event_id_type,
        {{ json_type(p, ['product']) }} as product_type,
        {{ json_type(p, ['product', 'id']) }} as product_id_type,
        {{ json_type(p, ['order']) }} as order_type,
        {{ json_type(p, ['quantity']) }} as quantity_type,
        {{ json_type(p, ['search', 'results_count']) }} as search_results_count_type,
        {{ json_items_beyond(p, ['order', 'items'], ['price'], var('max_abs_amount')) }}
        or {{ json_items_beyond(p, ['order', 'items'], ['quantity'], var('max_abs_count')) }}
            as has_order_item_beyond_bounds,
        {{ json_is_optional(p, ['user_id'], ['string']) }} as is_user_id_typed,
        {{ json_is_optional(p, ['product', 'price'], ['number']) }}
        and {{ json_is_optional(p, ['order', 'revenue'], ['number']) }}
        and {{ json_is_optional(p, ['cart', 'value'], ['number']) }}
        and {{ json_is_optional(p, ['order', 'items'], ['array']) }}
        and {{ json_is_optional(p, ['search', 'results_count'], ['number']) }}
        and {{ json_is_optional(p, ['page'], ['object']) }}
        and {{ json_is_optional(p, ['device'], ['object']) }}
        and {{ json_is_optional(p, ['traffic'], ['object']) }}
        and {{ json_is_optional(p, ['properties'], ['object']) }} as are_optional_fields_typed
    from raw_events
),

normalised as (
    select
        extracted.*,
        lower(trim(extracted.event_name_raw)) as event_name,
        case
            when extracted.device_type_raw is null then 'unknown'
            when lower(trim(extracted.device_type_raw)) in ('desktop', 'mobile', 'tablet', 'other')
                then lower(trim(extracted.device_type_raw))
            else 'other'
        end as device_type,
        coalesce(nullif(lower(trim(extracted.traffic_source_raw)), ''), '(direct)') as traffic_source,
        coalesce(nullif(lower(trim(extracted.traffic_medium_raw)), ''), '(none)') as traffic_medium,
        {{ is_rfc3339_timestamp('extracted.event_timestamp') }} as is_event_timestamp_valid,
        {{ is_rfc3339_timestamp('extracted.received_at_raw') }} as is_received_at_valid
    from extracted
),

timed as (
    select
        normalised.*,
        case
            when normalised.is_event_timestamp_valid then {{ to_timestamp_tz('normalised.event_timestamp') }}
        end as event_at,
        case
            when normalised.is_received_at_valid then {{ to_timestamp_tz('normalised.received_at_raw') }}
        end as received_at
    from normalised
),

checked as (
    select
        timed.*,
        case
            when coalesce(timed.payload_type, '') != 'object' then 'payload is not a JSON object'
            when timed.event_id is null then 'missing event_id'
            when not {{ regex_matches('timed.event_id', uuid_pattern) }} then 'event_id is not a UUID'
            when timed.event_name_raw is null then 'missing event_name'
            when not {{ regex_matches('timed.event_name', '^[a-z][a-z0-9_]{0,63}$') }}
                then 'malformed event_name'
            when timed.event_timestamp is null then 'missing event_timestamp'
            when not timed.is_event_timestamp_valid then 'event_timestamp is not an RFC 3339 date-time'
            when coalesce(timed.anonymous_id, '') = '' then 'missing anonymous_id'
            {#- no session_id at all: the warehouse derives the session (fact_events) -#}
            when timed.session_id = '' then 'empty session_id'
            when not timed.is_user_id_typed then 'user_id is not a string'
            when timed.received_at_raw is not null and not timed.is_received_at_valid
                then 'received_at is not an RFC 3339 date-time'
            {#- the contract's window (x-limits): a client clock far ahead, or an event older than
                the endpoint keeps; without received_at (a raw line not from the endpoint) the
                time it was loaded bounds the clock -#}
            when
                {{ seconds_between('coalesce(timed.received_at, timed.loaded_at)', 'timed.event_at') }}
                > {{ var('max_clock_ahead_seconds') }}
                then 'event_timestamp more than {{ var("max_clock_ahead_seconds") // 3600 }} hours after received_at'
            when
                {{ seconds_between('timed.event_at', 'timed.received_at') }}
                > {{ var('max_event_age_days') * 86400 }}
                then 'event_timestamp more than {{ var("max_event_age_days") }} days before received_at'
            when timed.schema_version is not null and timed.schema_version != '1'
                then 'unsupported schema_version'
            when not timed.are_optional_fields_typed then 'a field has the wrong type'
            when
                timed.event_name in (
                    'product_view', 'add_to_cart', 'remove_from_cart', 'update_cart_quantity'
                )
                and timed.product_id is null
                then 'missing product.id'
            when
                timed.event_name in ('add_to_cart', 'remove_from_cart', 'update_cart_quantity')
                and timed.quantity is null
                then 'missing or non-integer quantity'
            when timed.quantity_type is not null and timed.quantity is null
                then 'quantity is not an integer'
            when
                abs(timed.product_price) > {{ var('max_abs_amount') }}
                or abs(timed.cart_value) > {{ var('max_abs_amount') }}
                or abs(timed.order_revenue) > {{ var('max_abs_amount') }}
                or timed.has_order_item_beyond_bounds
                or (timed.search_results_count_type = 'number' and timed.search_results_count is null)
                then 'a number is beyond the contract''s bounds'
            when timed.event_name = 'purchase' and timed.order_id is null then 'missing order.order_id'
        end as invalid_reason
    from timed
),

typed as (
    select
        checked.event_id,
        checked.event_name,
        checked.event_timestamp,
        checked.event_at,
        checked.received_at,
        checked.loaded_at,
        checked.anonymous_id,
        checked.session_id,
        nullif(checked.user_id, '') as user_id,
        checked.schema_version,
        checked.page_url,
        checked.page_path,
        checked.page_title,
        checked.page_referrer,
        checked.device_type,
        checked.device_user_agent,
        checked.device_os,
        checked.device_browser,
        checked.device_screen,
        checked.traffic_source,
        checked.traffic_medium,
        checked.traffic_campaign,
        checked.traffic_content,
        checked.traffic_term,
        checked.product_id,
        checked.product_name,
        checked.product_category,
        checked.product_brand,
        checked.product_price,
        checked.product_currency,
        checked.quantity,
        checked.cart_id,
        checked.cart_value,
        checked.cart_currency,
        checked.order_id,
        checked.order_revenue,
        checked.order_currency,
        checked.order_items,
        checked.search_query,
        checked.search_results_count,
        checked.properties,
        coalesce(
            {{ regex_matches('checked.device_user_agent', var('bot_user_agent_pattern'), case_insensitive=true) }},
            false
        ) as is_bot,
        coalesce(
            checked.event_name in (
                {% for known_name in var('known_event_names') -%}
                    '{{ known_name }}'{% if not loop.last %},{% endif %}
                {% endfor -%}
            ),
            false
        ) as is_known_event_name,
        checked.invalid_reason is null as is_valid,
        checked.invalid_reason,
        {{ json_to_text('checked.payload') }} as payload,
        checked.bucket,
        checked.object_key,
        checked.line_number,
        checked.load_id
    from checked
),

final as (
    select
        typed.*,
        coalesce(
            {{ seconds_between('typed.received_at', 'typed.event_at') }}
            > {{ var('clock_ahead_tolerance_seconds') }},
            false
        ) as is_client_clock_ahead
    from typed
)

select * from final
