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
    (retained_users 0 when nobody came back; up to 999 weeks). A cell counts the current rows
    of int_retention_users with its key (week 0's count is the cohort's size).
    Incremental by cell: the cells of the int_retention_users rows written since the last run
    (a user's new week, a user who moved to another cohort or left one: its tombstone) are
    recounted through that table's cell index, and the rows of their cohorts are written
    again with the new cohort size; when the newest week moves on, every cohort gets its new
    weeks' rows. A cycle costs the cells its users changed, not the history. A cohort left
    with no user loses its rows (post-hook); the tombstones read are removed. After a rebuild
    of int_retention_users alone it counts everything again. -#}
{%- set cell = ['cohort_kind', 'cohort_week', 'device_type', 'traffic_source', 'weeks_since'] -%}
{%- set cohort = ['cohort_kind', 'cohort_week', 'device_type', 'traffic_source'] -%}
{%- set counting = is_incremental() and not upstream_rebuilt_since_this('int_retention_users') -%}
{{ config(
    unique_key=cell,
    pre_hook="{{ delete_all_when_upstream_rebuilt('int_retention_users') }}",
    post_hook=[
        "{{ delete_emptied_cohorts() }}",
        "{{ delete_read_tombstones(ref('int_retention_users')) }}",
    ],
) }}

with

{% if counting -%}
changed_cells as (
    select distinct
        changed.cohort_kind,
        changed.cohort_week,
        changed.device_type,
        changed.traffic_source,
        changed.weeks_since
    from {{ ref('int_retention_users') }} as changed
    where changed.dbt_updated_at > {{ run_watermark() }}
),

cell_counts as (
    select
        changed_cells.cohort_kind,
        changed_cells.cohort_week,
        changed_cells.device_type,
        changed_cells.traffic_source,
        changed_cells.weeks_since,
        count(counted.weeks_since) as retained_users
    from changed_cells
    left join {{ ref('int_retention_users') }} as counted
        on
            {{ columns_equal('changed_cells', 'counted', cell) }}
            and counted.is_current
    group by 1, 2, 3, 4, 5
),

previous_cohorts as (
    select
        previous.cohort_kind,
        previous.cohort_week,
        previous.device_type,
        previous.traffic_source,
        max(previous.cohort_users) as cohort_users,
        max(previous.weeks_since) as weeks_held
    from {{ this }} as previous
    group by 1, 2, 3, 4
),
{% else %}
    cell_counts as (
        select
            counted.cohort_kind,
            counted.cohort_week,
            counted.device_type,
            counted.traffic_source,
            counted.weeks_since,
            count(*) as retained_users
        from {{ ref('int_retention_users') }} as counted
        where counted.is_current
        group by 1, 2, 3, 4, 5
    ),
{% endif %}

newest_week as (
    select max(active.activity_week) as activity_week
    from {{ ref('int_retention_users') }} as active
    where active.is_current
),

-- the cohorts whose rows are written: those of the recounted cells, and every cohort whose
-- newest row is short of the newest week
cohorts_to_write as (
    select distinct
        cell_counts.cohort_kind,
        cell_counts.cohort_week,
        cell_counts.device_type,
        cell_counts.traffic_source
    from cell_counts
    {%- if counting %}
    union
    select
        previous_cohorts.cohort_kind,
        previous_cohorts.cohort_week,
        previous_cohorts.device_type,
        previous_cohorts.traffic_source
    from previous_cohorts
    cross join newest_week
    where
        {{ weeks_between('previous_cohorts.cohort_week', 'newest_week.activity_week') }}
        > previous_cohorts.weeks_held
    {%- endif %}
),

cohort_sizes as (
    select
        cohorts_to_write.*,
        {%- if counting %}
        coalesce(week_zero.retained_users, previous_cohorts.cohort_users, 0) as cohort_users
        {%- else %}
            coalesce(week_zero.retained_users, 0) as cohort_users
        {%- endif %}
    from cohorts_to_write
    left join cell_counts as week_zero
        on
            {{ columns_equal('cohorts_to_write', 'week_zero', cohort) }}
            and week_zero.weeks_since = 0
    {%- if counting %}
    left join previous_cohorts
        on {{ columns_equal('cohorts_to_write', 'previous_cohorts', cohort) }}
    {%- endif %}
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
        {%- if counting %}
        cast(coalesce(cell_counts.retained_users, previous.retained_users, 0) as bigint) as retained_users,
        {%- else %}
            cast(coalesce(cell_counts.retained_users, 0) as bigint) as retained_users,
        {%- endif %}
        {{ run_timestamp() }} as dbt_updated_at
    from triangle
    left join cell_counts
        on {{ columns_equal('triangle', 'cell_counts', cell) }}
    {%- if counting %}
    left join {{ this }} as previous
        on {{ columns_equal('triangle', 'previous', cell) }}
    {%- endif %}
)

select * from final
