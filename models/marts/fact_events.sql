{#- One row per distinct valid event (bots left out unless var exclude_bots is false).
    A resent event collapses to its first loaded copy. Incremental on loaded_at with a lookback:
    raw rows loaded since the watermark are read, event_ids already present are skipped, so a
    late or repeated event counts once. Rows already present are restated when their user_key
    (a new identity stitch) or their product's attributes (dim_products) changed in this run:
    dbt_updated_at says when a row was last written, inserted_at when it was first (a restated
    row keeps it), so a model that reads neither user_key nor product attributes follows the
    new events alone.
    Sessions for events sent without a session_id (Segment's SDKs send none): a visitor's
    sessionless events in time order are one session until 30 minutes (var
    session_inactivity_minutes) pass without one, keyed 'sx-' + md5(anonymous_id, the event_id
    of the session's first loaded event). An incremental run splits again the whole timeline of
    each visitor with new sessionless events (their derived sessions already in the mart
    included), so every run of events gets the key a full rebuild gives it: a session a new
    event joins keeps its key, and when a new event joins two sessions their events take the
    key of the first loaded one, the other's are restated (previous_session_id names the session
    they left) and its key is retired (post-hook record_retired_sessions, macros/session_moves.sql). -#}
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
    "{{ record_retired_sessions() }}",
    "{{ record_incremental_run() }}",
    "{{ record_full_build() }}",
    "{{ ensure_purchase_indexes() }}",
    "{{ summarize_new_brin_ranges(this) }}",
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

sessionless_events as (
    {#- the new events without a session_id, whole (they go on to be written): the steps below
        carry their columns through, so no step joins back to the cycle's events -#}
    select new_events.*
    from new_events
    where new_events.session_id is null
),

{% if is_incremental() %}
    {#- the visitors' derived sessions already in the mart, each event of them: what a new event
        may continue. The visitors as a short list (in_short_list): one anonymous_id index descent
        each, and none at all in a cycle without sessionless events -#}
    earlier_sessionless_events as (
        select
            {% for column in event_columns -%}
                already_loaded.{{ column }},
            {% endfor -%}
            {{ existing_column('already_loaded', 'inserted_at', dbt.type_timestamp()) }} as inserted_at
        from {{ this }} as already_loaded
        where
            {{ in_short_list(
                'already_loaded.anonymous_id',
                'select distinct sessionless_visitors.anonymous_id from sessionless_events as sessionless_visitors'
            ) }}
            and already_loaded.session_id like 'sx-%'
    ),

    visitor_timelines as (
        select * from sessionless_events
        union all
        select * from earlier_sessionless_events
    ),
{% else %}
    visitor_timelines as (
        select * from sessionless_events
    ),
{% endif %}

timeline_gaps as (
    select
        visitor_timelines.*,
        {{ seconds_between(
            'lag(visitor_timelines.event_at) over (partition by visitor_timelines.anonymous_id'
            ~ ' order by visitor_timelines.event_at, visitor_timelines.event_id)',
            'visitor_timelines.event_at'
        ) }} as seconds_since_previous
    from visitor_timelines
),

timeline_runs as (
    {#- a run: events of a visitor with no gap over the inactivity limit between them -#}
    select
        timeline_gaps.*,
        sum(
            case
                when
                    timeline_gaps.seconds_since_previous is null
                    or timeline_gaps.seconds_since_previous > {{ var('session_inactivity_minutes') * 60 }}
                    then 1
                else 0
            end
        ) over (
            partition by timeline_gaps.anonymous_id
            order by timeline_gaps.event_at, timeline_gaps.event_id
            rows between unbounded preceding and current row
        ) as run_number
    from timeline_gaps
),

runs_numbered as (
    {#- per event: its run's first loaded event (by loaded_at, then event_id), whose key the
        whole run takes, as a full rebuild gives it -#}
    select
        timeline_runs.*,
        first_value(timeline_runs.event_id) over (
            partition by timeline_runs.anonymous_id, timeline_runs.run_number
            order by timeline_runs.loaded_at, timeline_runs.event_id
            rows between unbounded preceding and unbounded following
        ) as run_first_loaded_event_id
    from timeline_runs
),

timeline_sessions as (
    select
        runs_numbered.*,
        {{ dbt.concat([
            "'sx-'",
            dbt.hash(dbt.concat([
                'runs_numbered.anonymous_id', "'/'", 'runs_numbered.run_first_loaded_event_id'
            ]))
        ]) }} as derived_session_id
    from runs_numbered
),

new_events_in_derived_sessions as (
    select
        {% for column in event_columns -%}
            {% if column == 'session_id' -%}
                timeline_sessions.derived_session_id as session_id,
            {% else -%}
                timeline_sessions.{{ column }},
            {% endif -%}
        {% endfor -%}
        timeline_sessions.inserted_at,
        cast(null as {{ dbt.type_string() }}) as previous_session_id
    from timeline_sessions
    where timeline_sessions.session_id is null
),

{% if is_incremental() %}
    resessioned_events as (
        {#- events already in the mart whose derived session this run re-keys: a new event that
            joins two of a visitor's sessions (within the inactivity limit of both) makes them
            one run, whose key is that of its first loaded event, in one of them; the other's
            events move to it and its key is retired (post-hook record_retired_sessions). The
            same for a late event loaded before every event of the session it joins. -#}
        select
            {% for column in event_columns -%}
                {% if column == 'session_id' -%}
                    timeline_sessions.derived_session_id as session_id,
                {% else -%}
                    timeline_sessions.{{ column }},
                {% endif -%}
            {% endfor -%}
            timeline_sessions.inserted_at,
            timeline_sessions.session_id as previous_session_id
        from timeline_sessions
        where
            timeline_sessions.session_id is not null
            and timeline_sessions.session_id != timeline_sessions.derived_session_id
    ),
{% endif %}

new_events_in_sessions as (
    select
        new_events.*,
        cast(null as {{ dbt.type_string() }}) as previous_session_id
    from new_events
    where new_events.session_id is not null
    union all
    select * from new_events_in_derived_sessions
),

{% if is_incremental() %}
    restated_events as (
        select
            {% for column in event_columns -%}
                already_loaded.{{ column }},
            {% endfor -%}
            {{ existing_column('already_loaded', 'inserted_at', dbt.type_timestamp()) }} as inserted_at,
            cast(null as {{ dbt.type_string() }}) as previous_session_id
        from {{ this }} as already_loaded
        where
            {#- the models themselves, not the import CTEs: a second reference would materialise them.
                Two short lists (in_short_list: a run's new stitches and changed products): the
                planner ORs the anonymous_id and product_id indexes (BitmapOr) instead of
                scanning every event already loaded. #}
            ({{ in_short_list(
                'already_loaded.anonymous_id',
                'select new_stitches.anonymous_id from ' ~ ref('int_users_stitched') ~ ' as new_stitches'
                ~ ' where new_stitches.dbt_updated_at > ' ~ run_watermark()
            ) }}
            or {{ in_short_list(
                'already_loaded.product_id',
                'select changed_products.product_id from ' ~ ref('dim_products') ~ ' as changed_products'
                ~ ' where changed_products.attributes_changed_at > ' ~ run_watermark()
            ) }})
    ),

    {#- a restated event that this run also re-keys is written once, re-keyed #}
    events_to_write as (
        select * from new_events_in_sessions
        union all
        select * from resessioned_events
        union all
        select restated_events.*
        from restated_events
        left join resessioned_events
            on restated_events.event_id = resessioned_events.event_id
        where resessioned_events.event_id is null
    ),
{% else %}
    events_to_write as (
        select * from new_events_in_sessions
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
        {{ run_timestamp() }} as dbt_updated_at,
        events_to_write.previous_session_id
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
