{#- One row per cohort kind, cohort week, device type, traffic source and weeks since: the
    users of a cohort and how many of them came back that week. Device and source are those of
    the session that put the user in the cohort (the first session, or the first purchasing
    session); summed over them, the rows give the whole cohort. Users are stitched user_keys
    (fact_sessions), weeks are ISO weeks (starting Monday, UTC session dates).
    - visitors: the cohort is the week of the user's first session; a user is retained in a
      week when they had a session in it (week 0 is the cohort itself).
    - purchasers: the cohort is the week of the user's first purchase; retained = bought
      again (a session with a purchase) in that week (week 0 is the cohort itself).
    Every cohort has a row for each week from its own to the newest week with sessions
    (retained_users 0 when nobody came back; up to 999 weeks). Incremental by cohort week: the
    users with sessions rewritten in fact_sessions since the last run (a new or late session, a
    stitched identity) name every week they had a session in, and the cohorts of those weeks
    are recomputed whole: a user's old and new cohort weeks are both among them (a late first
    session moves a user to an earlier cohort; a stitched guest's sessions are the user's now),
    and so is the cohort a return adds to. When the newest week has moved on, every cohort is
    recomputed (each gets that week's row). A pre-hook deletes the touched weeks first, so a
    cohort its only user left loses its rows. -#}
{{ config(
    pre_hook="{{ delete_recomputed_keys('cohort_week', retention_touched_weeks()) }}",
    **replace_by_key_on_spark('cohort_week')
) }}

with

sessions as (
    select
        session_id,
        user_key,
        session_start_at,
        session_date,
        device_type,
        traffic_source,
        has_purchase
    from {{ ref('fact_sessions') }}
),

activity_weeks as (
    select distinct
        sessions.user_key,
        {{ week_start('sessions.session_date') }} as activity_week,
        'visitors' as cohort_kind
    from sessions
    union all
    select distinct
        sessions.user_key,
        {{ week_start('sessions.session_date') }} as activity_week,
        'purchasers' as cohort_kind
    from sessions
    where sessions.has_purchase
),

newest_week as (
    select max(activity_weeks.activity_week) as activity_week
    from activity_weeks
),

digits as (
    select 0 as digit
    union all
    select 1
    union all
    select 2
    union all
    select 3
    union all
    select 4
    union all
    select 5
    union all
    select 6
    union all
    select 7
    union all
    select 8
    union all
    select 9
),

week_numbers as (
    select ones.digit + 10 * tens.digit + 100 * hundreds.digit as weeks_since
    from digits as ones
    cross join digits as tens
    cross join digits as hundreds
),

cohort_sessions as (
    select
        sessions.user_key,
        sessions.session_date,
        sessions.device_type,
        sessions.traffic_source,
        'visitors' as cohort_kind,
        row_number() over (
            partition by sessions.user_key
            order by sessions.session_start_at, sessions.session_id
        ) as session_number
    from sessions
    union all
    select
        sessions.user_key,
        sessions.session_date,
        sessions.device_type,
        sessions.traffic_source,
        'purchasers' as cohort_kind,
        row_number() over (
            partition by sessions.user_key
            order by sessions.session_start_at, sessions.session_id
        ) as session_number
    from sessions
    where sessions.has_purchase
),

all_cohorts as (
    select
        cohort_sessions.cohort_kind,
        cohort_sessions.user_key,
        {{ week_start('cohort_sessions.session_date') }} as cohort_week,
        cohort_sessions.device_type,
        cohort_sessions.traffic_source
    from cohort_sessions
    where cohort_sessions.session_number = 1
),

{% if is_incremental() -%}
previous_reach as (
    select
        previous.cohort_week,
        max(previous.weeks_since) as weeks_since
    from {{ this }} as previous
    where previous.cohort_week = (select min(first_cohort.cohort_week) from {{ this }} as first_cohort)
    group by previous.cohort_week
),

touched_weeks as (
    {{ retention_touched_weeks() }}
    union
    select all_cohorts.cohort_week
    from all_cohorts
    cross join newest_week
    cross join previous_reach
    where
        {{ weeks_between('previous_reach.cohort_week', 'newest_week.activity_week') }}
        > previous_reach.weeks_since
),
{%- endif %}

cohorts as (
    select all_cohorts.*
    from all_cohorts
    where
        {{ when_incremental(
            'all_cohorts.cohort_week in (select touched_weeks.cohort_week from touched_weeks)'
        ) }}
),

cohort_sizes as (
    select
        cohorts.cohort_kind,
        cohorts.cohort_week,
        cohorts.device_type,
        cohorts.traffic_source,
        count(*) as cohort_users
    from cohorts
    group by 1, 2, 3, 4
),

returns_per_week as (
    select
        cohorts.cohort_kind,
        cohorts.cohort_week,
        cohorts.device_type,
        cohorts.traffic_source,
        {{ weeks_between('cohorts.cohort_week', 'activity_weeks.activity_week') }} as weeks_since,
        count(*) as retained_users
    from cohorts
    inner join activity_weeks
        on
            cohorts.user_key = activity_weeks.user_key
            and cohorts.cohort_kind = activity_weeks.cohort_kind
    group by 1, 2, 3, 4, 5
),

triangle as (
    select
        cohort_sizes.cohort_kind,
        cohort_sizes.cohort_week,
        cohort_sizes.device_type,
        cohort_sizes.traffic_source,
        week_numbers.weeks_since,
        cohort_sizes.cohort_users
    from cohort_sizes
    cross join newest_week
    inner join week_numbers
        on week_numbers.weeks_since <= {{ weeks_between('cohort_sizes.cohort_week', 'newest_week.activity_week') }}
),

final as (
    select
        triangle.cohort_kind,
        triangle.cohort_week,
        triangle.device_type,
        triangle.traffic_source,
        cast(triangle.weeks_since as integer) as weeks_since,
        cast(triangle.cohort_users as bigint) as cohort_users,
        cast(coalesce(returns_per_week.retained_users, 0) as bigint) as retained_users,
        {{ run_timestamp() }} as dbt_updated_at
    from triangle
    left join returns_per_week
        on
            triangle.cohort_kind = returns_per_week.cohort_kind
            and triangle.cohort_week = returns_per_week.cohort_week
            and triangle.device_type = returns_per_week.device_type
            and triangle.traffic_source = returns_per_week.traffic_source
            and triangle.weeks_since = returns_per_week.weeks_since
)

select * from final
