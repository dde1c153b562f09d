"""The data-health bar's query (every page)."""

from __future__ import annotations

from .base import QueryResult, run
from .settings import settings


def full_check(conn) -> QueryResult:
    """The newest daily full check (`analytics.full_checks`) that finished: when it started, its
    status, tests and failures. Empty before the first check (or without the view)."""
    with conn.cursor() as cur:
        cur.execute("select to_regclass('analytics.full_checks') is not null")
        if not cur.fetchone()[0]:
            return run(conn, "full_check", "select null::timestamptz as started_at where false", {})
    query = """
    select started_at, status, tests, failures, warnings
    from analytics.full_checks
    where status in ('passed', 'failed')
    order by started_at desc
    limit 1
    """
    return run(conn, "full_check", query, {})


def data_health(conn) -> QueryResult:
    """Newest load, its lag, events loaded in the last 24 hours, quarantined events, the
    freshness status, whether the marts are behind the raw data (a load committed after
    the last successful build started), whether the newest finished build failed (its error),
    and the oldest date the marts hold. Uses `analytics.load_health` (one row per loader run) when the dbt
    project provides it; otherwise falls back to what the marts show."""
    with conn.cursor() as cur:
        cur.execute("select to_regclass('analytics.load_health') is not null")
        has_load_health = cur.fetchone()[0]
    thresholds = settings(conn)  # the dbt project's freshness vars
    params = {"warn": thresholds.freshness_warn_minutes, "error": thresholds.freshness_error_minutes}
    if has_load_health:
        query = """
        with runs as (
            select max(finished_at) filter (where status = 'succeeded') as last_load_at,
                   coalesce(sum(events) filter (where finished_at >= now() - interval '24 hours'), 0)::bigint
                       as events_last_24h,
                   coalesce(sum(rejects), 0)::bigint as rejected_lines,
                   count(*) filter (where status = 'failed' and finished_at >= now() - interval '24 hours')
                       as failed_runs_24h,
                   max(last_loaded_at) filter (where events > 0) as raw_loaded_at,
                   max(dbt_started_at) filter (where dbt_status = 'success') as marts_data_at,
                   max(dbt_finished_at) filter (where dbt_status = 'success') as marts_built_at
            from analytics.load_health
        ),
        quarantine as (select count(*)::bigint as quarantined_events from analytics.rejected_events),
        -- the oldest date the marts hold (raw may keep fewer days: RAW_TABLE_RETENTION_DAYS)
        kept as (select min(event_date) as first_date from analytics.agg_events_hourly),
        -- the oldest month fact_events still holds when retention (RETENTION_MONTHS) dropped
        -- older ones: its oldest month partition (unless a default partition from before
        -- partitioning holds rows), from the catalog, not a scan
        partitions as (
            select min(substring(pg_get_expr(part.relpartbound, part.oid) from 'FROM \\(''([0-9-]{10})')::date)
                       as oldest_month,
                   coalesce(bool_or(pg_get_expr(part.relpartbound, part.oid) = 'DEFAULT' and part.reltuples > 0),
                            false) as default_holds_rows
            from pg_inherits as inherits
            inner join pg_class as part on inherits.inhrelid = part.oid
            where inherits.inhparent = to_regclass('analytics.fact_events')
        ),
        -- the newest build that finished: a failed one (a failing test, e.g. the guard that new
        -- raw lines reached fact_events) is shown until a build passes
        last_build as (
            select dbt_status as last_build_status, error as last_build_error,
                   dbt_started_at as last_build_at
            from analytics.load_health
            where dbt_status in ('success', 'failed')
            order by dbt_started_at desc nulls last
            limit 1
        )
        select runs.last_load_at,
               round(extract(epoch from now() - runs.last_load_at) / 60)::int as lag_minutes,
               runs.events_last_24h,
               runs.rejected_lines,
               quarantine.quarantined_events,
               runs.failed_runs_24h,
               runs.raw_loaded_at,
               runs.marts_built_at,
               -- a load committed after the last good build started is not in the marts yet
               coalesce(runs.raw_loaded_at > coalesce(runs.marts_data_at, '-infinity'), false)
                   as marts_behind,
               coalesce(last_build.last_build_status = 'failed', false) as last_build_failed,
               last_build.last_build_error,
               last_build.last_build_at,
               kept.first_date,
               case
                   when not partitions.default_holds_rows and partitions.oldest_month > kept.first_date
                       then partitions.oldest_month
               end as events_kept_since,
               case
                   when runs.last_load_at is null then 'no data'
                   when now() - runs.last_load_at > make_interval(mins => %(error)s) then 'error'
                   when now() - runs.last_load_at > make_interval(mins => %(warn)s) then 'warn'
                   else 'fresh'
               end as freshness
        from runs cross join quarantine cross join kept cross join partitions left join last_build on true
        """
    else:
        query = """
        with newest as (select max(loaded_at) as last_load_at from analytics.fact_events),
        recent as (
            select count(*)::bigint as events_last_24h
            from analytics.fact_events
            where loaded_at >= now() - interval '24 hours'
        ),
        quarantine as (select count(*)::bigint as quarantined_events from analytics.rejected_events)
        select newest.last_load_at,
               round(extract(epoch from now() - newest.last_load_at) / 60)::int as lag_minutes,
               recent.events_last_24h,
               null::bigint as rejected_lines,
               quarantine.quarantined_events,
               null::bigint as failed_runs_24h,
               null::timestamptz as raw_loaded_at,
               null::timestamptz as marts_built_at,
               false as marts_behind,
               false as last_build_failed,
               null::text as last_build_error,
               null::timestamptz as last_build_at,
               (select min(event_date) from analytics.fact_events) as first_date,
               null::date as events_kept_since,
               case
                   when newest.last_load_at is null then 'no data'
                   when now() - newest.last_load_at > make_interval(mins => %(error)s) then 'error'
                   when now() - newest.last_load_at > make_interval(mins => %(warn)s) then 'warn'
                   else 'fresh'
               end as freshness
        from newest cross join recent cross join quarantine
        """
    return run(conn, "data_health", query, params)
