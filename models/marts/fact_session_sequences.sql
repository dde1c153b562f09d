{#- One row per session: its events in time order (then event_id) as parallel arrays (name,
    microseconds since the session's start, product, page path, search query, order, and the
    stitched user where a session's events have more than one), one character per event in
    event_codes (the event's place in var known_event_names, '~' for another name), and the
    session's device and traffic. What analytics.funnel(spec) reads (macros/funnel_engine.sql): a
    session's whole sequence in one row, so an ad-hoc funnel reads no event twice and sorts
    nothing. Incremental: sessions with events written or restated in fact_events since the
    last run are recomputed whole. -#}
{%- set codes = funnel_event_codes() -%}

{{ config(pre_hook="{{ delete_retired_sessions() }}") }}

with

events as (
    select
        event_id,
        event_name,
        event_at,
        session_id,
        user_key,
        product_id,
        page_path,
        search_query,
        order_id,
        dbt_updated_at
    from {{ ref('fact_events') }}
),

{{ touched_keys('touched_sessions', ref('fact_events'), 'session_id') }}

sessions as (
    select
        session_id,
        session_start_at,
        session_end_at,
        device_type,
        traffic_source,
        traffic_medium,
        traffic_campaign
    from {{ ref('fact_sessions') }}
    where {{ in_touched_keys_by_index('touched_sessions', 'session_id') }}
),

session_events as (
    select events.*
    from events
    where {{ in_touched_keys_by_index('touched_sessions', 'events.session_id') }}
),

coded_events as (
    select
        session_events.*,
        sessions.session_start_at,
        case session_events.event_name
            {%- for name, code in codes.items() %}
                when '{{ name }}' then '{{ code }}'
            {%- endfor %}
            else '~'
        end as event_code
    from session_events
    inner join sessions
        on session_events.session_id = sessions.session_id
),

sequenced as (
    select
        coded_events.session_id,
        min(coded_events.user_key) as first_user_key,
        count(distinct coded_events.user_key) as user_keys_count,
        count(*) as events,
        count(distinct coded_events.event_at) as distinct_event_times,
        {{ join_in_order('coded_events.event_code', 'coded_events.event_at, coded_events.event_id', '') }}
            as event_codes,
        {% for column, name in [
            ('event_name', 'event_names'),
            ('product_id', 'product_ids'),
            ('page_path', 'page_paths'),
            ('search_query', 'search_queries'),
            ('order_id', 'order_ids'),
            ('user_key', 'user_keys'),
        ] -%}
            {{ array_in_order('coded_events.' ~ column, ['coded_events.event_at', 'coded_events.event_id']) }}
                as {{ name }},
        {% endfor -%}
        {{ array_in_order(
            microseconds_between('coded_events.session_start_at', 'coded_events.event_at'),
            ['coded_events.event_at', 'coded_events.event_id'],
        ) }} as event_offsets_us,
        max(coded_events.dbt_updated_at) as facts_changed_at
    from coded_events
    group by 1
),

final as (
    select
        sequenced.session_id,
        sequenced.first_user_key as user_key,
        case when sequenced.user_keys_count > 1 then sequenced.user_keys end as user_keys,
        sessions.session_start_at,
        sessions.session_end_at,
        {{ utc_date('sessions.session_start_at') }} as first_event_date,
        {{ utc_date('sessions.session_end_at') }} as last_event_date,
        sessions.device_type,
        sessions.traffic_source,
        sessions.traffic_medium,
        sessions.traffic_campaign,
        cast(sequenced.events as integer) as events,
        sequenced.distinct_event_times < sequenced.events as has_tied_events,
        sequenced.event_codes,
        sequenced.event_names,
        sequenced.event_offsets_us,
        sequenced.product_ids,
        sequenced.page_paths,
        sequenced.search_queries,
        sequenced.order_ids,
        sequenced.facts_changed_at,
        {{ run_timestamp() }} as dbt_updated_at
    from sequenced
    inner join sessions
        on sequenced.session_id = sessions.session_id
)

select * from final
