"""The Overview page's own queries (its funnel and top products come from `funnel.py` and
`products.py`)."""

from __future__ import annotations

from datetime import date, timedelta

from .base import QueryResult, _list_or_none, _q, _whitelisted, period, run, segment_filter

TIME_SERIES_EVENTS = ["page_view", "product_view", "add_to_cart", "purchase"]


def events_per_day(conn, start: date, end: date, event_names=None, devices=None, sources=None) -> QueryResult:
    """Events per UTC day and event type, from `agg_events_hourly`."""
    segment, params = segment_filter(devices, sources)
    params = period(start, end, params)
    params["event_names"] = _list_or_none(event_names)
    query = _q(
        """
        select event_date, event_name, sum(events)::bigint as events
        from analytics.agg_events_hourly
        where event_date between %(start)s and %(end)s
          and (%(event_names)s::text[] is null or event_name = any(%(event_names)s::text[]))""",
        segment,
        """
        group by 1, 2
        order by 1, 2
        """,
    )
    return run(conn, "events_per_day", query, params)


def previous_period(start: date, end: date) -> tuple[date, date]:
    """The period of equal length just before [start, end]."""
    days = (end - start).days + 1
    return start - timedelta(days=days), start - timedelta(days=1)


def overview_kpis(conn, start: date, end: date, devices=None, sources=None) -> QueryResult:
    """Events, sessions, purchasing sessions, revenue and conversion for the period and for
    the previous period of equal length (one row each: `period` = current / previous), from
    `agg_events_hourly` (events per UTC event date) and `agg_campaign_daily` (sessions per UTC
    session date)."""
    prev_start, prev_end = previous_period(start, end)
    events_segment, params = segment_filter(devices, sources, alias="h", indent=14)
    sessions_segment, _ = segment_filter(devices, sources, alias="c", indent=14)
    params = period(start, end, params)
    params.update(prev_start=prev_start, prev_end=prev_end)
    query = _q(
        """
        with periods as (
            select 'current' as period, %(start)s::date as first_date, %(end)s::date as last_date
            union all
            select 'previous', %(prev_start)s::date, %(prev_end)s::date
        ),
        events as (
            select case when h.event_date >= %(start)s::date then 'current' else 'previous' end as period,
                   sum(h.events) as events
            from analytics.agg_events_hourly as h
            where h.event_date between %(prev_start)s and %(end)s""",
        events_segment,
        """
            group by 1
        ),
        sessions as (
            select case when c.session_date >= %(start)s::date then 'current' else 'previous' end as period,
                   sum(c.sessions) as sessions,
                   sum(c.purchase_sessions) as purchasing_sessions,
                   sum(c.revenue) as revenue
            from analytics.agg_campaign_daily as c
            where c.session_date between %(prev_start)s and %(end)s""",
        sessions_segment,
        """
            group by 1
        )
        select periods.period,
               periods.first_date,
               periods.last_date,
               coalesce(events.events, 0)::bigint as events,
               coalesce(sessions.sessions, 0)::bigint as sessions,
               coalesce(sessions.purchasing_sessions, 0)::bigint as purchasing_sessions,
               round(coalesce(sessions.revenue, 0), 2) as revenue,
               round(100.0 * sessions.purchasing_sessions / nullif(sessions.sessions, 0), 2) as conversion_pct
        from periods
        left join events on events.period = periods.period
        left join sessions on sessions.period = periods.period
        order by periods.first_date desc
        """,
    )
    return run(conn, "overview_kpis", query, params)


# time-series grains a user may pick: key -> the period each row of `agg_events_hourly` falls
# in, as a UTC timestamp (fixed text, never user input)
GRAINS = {
    "hour": "h.event_hour at time zone 'UTC'",
    "day": "h.event_date::timestamp",
    "week": "date_trunc('week', h.event_date)::timestamp",
}


def auto_grain(start: date, end: date) -> str:
    """Hours for a one- or two-day range, weeks beyond half a year, days in between."""
    days = (end - start).days + 1
    return "hour" if days <= 2 else "week" if days > 183 else "day"


def events_over_time(
    conn, start: date, end: date, grain: str, event_names=None, devices=None, sources=None
) -> QueryResult:
    """Events per hour, day or week (UTC) and event type, from `agg_events_hourly`."""
    expr = _whitelisted(GRAINS, grain, "grain")
    segment, params = segment_filter(devices, sources, alias="h")
    params = period(start, end, params)
    params["event_names"] = _list_or_none(event_names)
    query = _q(
        """
        select {expr} as period_start, h.event_name, sum(h.events)::bigint as events
        from analytics.agg_events_hourly as h
        where h.event_date between %(start)s and %(end)s
          and (%(event_names)s::text[] is null or h.event_name = any(%(event_names)s::text[]))""",
        segment,
        """
        group by 1, 2
        order by 1, 2
        """,
        expr=expr,
    )
    return run(conn, f"events_per_{grain}", query, params)
