{#- The guard against a build that reads nothing new while raw holds new lines (issue 22: an
    empty first build on Spark once left fact_events empty for good, every test passing, because
    the staged events and fact_events were equally empty). Checks the raw lines loaded since the
    start of the last build that succeeded and before this build started (raw.load_runs, written
    by the loader and by the Spark build; nothing before the first good build): as many staged
    lines as raw ones, and every valid one (not a bot, var exclude_bots) has its event_id in
    fact_events. A failure names how many lines went missing, and fails the build, so the run
    summary and the data-health bar say so. It counts the raw table itself (the staged events
    may be what is broken), and only the window's lines (the raw table's loaded_at index): a
    cycle's cost, and after failed builds the window grows until one passes. Runs in every
    build, on both engines. -#}
{%- set window_since = none -%}
{%- set window_until = none -%}
{%- if execute -%}
    {%- set found = run_query(
        "select cast(max(case when dbt_status = 'success' then dbt_started_at end) as "
        ~ dbt.type_string() ~ "), cast(max(case when dbt_status = 'running' then dbt_started_at end) as "
        ~ dbt.type_string() ~ ") from " ~ source('clickstream', 'load_runs')
    ) -%}
    {%- if found.rows | length -%}
        {%- set window_since = found.columns[0].values()[0] -%}
        {%- set window_until = found.columns[1].values()[0] -%}
    {%- endif -%}
{%- endif -%}
{#- before the first good build there is nothing to compare with: the first build's own check is
    the reconciliation with raw (tag full_scan: in a full build, the daily full check and every
    Spark build). Reading every raw line here cost 785 s in the first build of a 12 M-line
    history (bench/cycles.py) -#}
{#- the window ends at the build the loader (or the Spark build) marked running; a dbt build by
    hand: its own start -#}
{%- if window_since is none -%}
    {%- set in_window = '1 = 0' -%}
{%- else -%}
    {%- set in_window = 'loaded_at > ' ~ timestamp_literal(window_since) ~ ' and loaded_at < '
        ~ (timestamp_literal(window_until) if window_until is not none else run_timestamp()) -%}
{%- endif -%}

with

new_raw_lines as (
    select count(*) as raw_lines
    from {{ source('clickstream', 'clickstream_events') }}
    where {{ in_window }}
),

staged_lines as (
    select
        event_id,
        is_valid,
        is_bot
    from {{ ref('stg_clickstream__events') }}
    where {{ in_window }}
),

{#- counts, not a join of the raw lines with the staged ones: staging is row by row (one staged
    row per raw row on both engines), and the planner, which has no statistics of a cycle's
    new loaded_at yet, ran that join as a nested loop over both (quadratic: minutes for 2,000
    lines). The lines missing from fact_events are an anti-join through its event_id index. -#}
staged as (
    select count(*) as staged_lines
    from staged_lines
),

missing as (
    select count(*) as valid_lines_missing_from_fact_events
    from staged_lines
    where
        staged_lines.is_valid
        {% if var('exclude_bots') -%}
            and not staged_lines.is_bot
        {%- endif %}
        and not exists (
            select 1
            from {{ ref('fact_events') }} as fact_events
            where fact_events.event_id = staged_lines.event_id
        )
),

final as (
    select
        new_raw_lines.raw_lines as raw_lines_since_last_good_build,
        new_raw_lines.raw_lines - staged.staged_lines as lines_not_staged,
        missing.valid_lines_missing_from_fact_events
    from new_raw_lines
    cross join staged
    cross join missing
    where
        new_raw_lines.raw_lines != staged.staged_lines
        or missing.valid_lines_missing_from_fact_events > 0
)

select * from final
