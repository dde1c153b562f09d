"""The Activity page's queries, over `agg_events_hourly` (in the reporting time zone, applied in
the query: `event_hour at time zone %(tz)s`), `agg_funnel_daily` and `agg_campaign_daily`."""

from __future__ import annotations

from datetime import date

from psycopg2 import sql

from .base import QueryResult, _list_or_none, _q, _whitelisted, period, run, segment_filter

ACTIVITY_BREAKDOWNS = {"device_type": "device_type", "traffic_source": "traffic_source"}


def _local_range(segment: sql.SQL) -> sql.Composed:
    """The `where` clause of the activity queries: local dates in the reporting time zone, the
    event types, the segment."""
    return sql.Composed(
        [
            sql.SQL(
                """
        where h.event_hour >= %(start)s::date::timestamp at time zone %(tz)s
          and h.event_hour < (%(end)s::date + 1)::timestamp at time zone %(tz)s
          and (%(event_names)s::text[] is null or h.event_name = any(%(event_names)s::text[]))"""
            ),
            segment,
        ]
    )


def _activity_params(start, end, tz, event_names, devices, sources) -> tuple[dict, sql.Composed]:
    segment, params = segment_filter(devices, sources, alias="h")
    params = period(start, end, params)
    params.update(tz=tz, event_names=_list_or_none(event_names))
    return params, _local_range(segment)


def events_by_hour(
    conn, start: date, end: date, tz: str = "UTC", event_names=None, devices=None, sources=None
) -> QueryResult:
    """Events per hour and event type in the reporting time zone (dates are local dates)."""
    params, local_range = _activity_params(start, end, tz, event_names, devices, sources)
    query = _q(
        """
        select h.event_hour at time zone %(tz)s as local_hour, h.event_name, sum(h.events)::bigint as events
        from analytics.agg_events_hourly as h
        """,
        local_range,
        """
        group by 1, 2
        order by 1, 2
        """,
    )
    return run(conn, "events_by_hour", query, params)


def events_by_local_day(
    conn, start: date, end: date, tz: str = "UTC", event_names=None, devices=None, sources=None
) -> QueryResult:
    """Events per local day and event type in the reporting time zone."""
    params, local_range = _activity_params(start, end, tz, event_names, devices, sources)
    query = _q(
        """
        select (h.event_hour at time zone %(tz)s)::date as local_date, h.event_name, sum(h.events)::bigint as events
        from analytics.agg_events_hourly as h
        """,
        local_range,
        """
        group by 1, 2
        order by 1, 2
        """,
    )
    return run(conn, "events_by_local_day", query, params)


def hour_weekday_heatmap(
    conn, start: date, end: date, tz: str = "UTC", event_names=None, devices=None, sources=None
) -> QueryResult:
    """Events per local weekday (1 = Monday) and hour of day. The rows are summed per UTC hour
    first, so the time-zone conversion runs once per hour, not once per row."""
    params, local_range = _activity_params(start, end, tz, event_names, devices, sources)
    query = _q(
        """
        with per_hour as (
            select h.event_hour, sum(h.events) as events
            from analytics.agg_events_hourly as h
        """,
        local_range,
        """
            group by 1
        )
        select extract(isodow from per_hour.event_hour at time zone %(tz)s)::int as weekday,
               extract(hour from per_hour.event_hour at time zone %(tz)s)::int as hour,
               sum(per_hour.events)::bigint as events
        from per_hour
        group by 1, 2
        order by 1, 2
        """,
    )
    return run(conn, "hour_weekday_heatmap", query, params)


def activity_breakdown(
    conn,
    start: date,
    end: date,
    dimension: str,
    tz: str = "UTC",
    event_names=None,
    devices=None,
    sources=None,
) -> QueryResult:
    """Events per device type or traffic source and event type."""
    expr = _whitelisted(ACTIVITY_BREAKDOWNS, dimension, "breakdown")
    params, local_range = _activity_params(start, end, tz, event_names, devices, sources)
    query = _q(
        """
        select h.{expr} as breakdown, h.event_name, sum(h.events)::bigint as events
        from analytics.agg_events_hourly as h
        """,
        local_range,
        """
        group by 1, 2
        order by 1, 2
        """,
        expr=expr,
    )
    return run(conn, "activity_breakdown", query, params)


def conversion_by_weekday(conn, start: date, end: date, devices=None, sources=None) -> QueryResult:
    """Sessions, purchasing sessions and conversion per weekday of the (UTC) session date."""
    segment, params = segment_filter(devices, sources)
    query = _q(
        """
        select extract(isodow from session_date)::int as weekday,
               to_char(min(session_date), 'Dy') as day,
               sum(sessions)::bigint as sessions,
               sum(purchase_sessions)::bigint as purchase_sessions,
               round(100.0 * sum(purchase_sessions) / nullif(sum(sessions), 0), 2) as conversion_pct
        from analytics.agg_funnel_daily
        where session_date between %(start)s and %(end)s""",
        segment,
        """
        group by 1
        order by 1
        """,
    )
    return run(conn, "conversion_by_weekday", query, period(start, end, params))


def campaign_sessions_per_day(
    conn, start: date, end: date, devices=None, sources=None, top: int = 8
) -> QueryResult:
    """Sessions per day for the biggest campaigns (to line campaigns up with activity spikes)."""
    segment, params = segment_filter(devices, sources, indent=14)
    params = period(start, end, params)
    params["top"] = int(top)
    query = _q(
        """
        with daily as (
            select session_date, coalesce(traffic_campaign, '(none)') as campaign, sum(sessions)::bigint as sessions
            from analytics.agg_campaign_daily
            where session_date between %(start)s and %(end)s""",
        segment,
        """
            group by 1, 2
        ),
        biggest as (
            select campaign from daily group by 1 order by sum(sessions) desc, 1 limit %(top)s
        )
        select daily.session_date, daily.campaign, daily.sessions
        from daily
        inner join biggest on biggest.campaign = daily.campaign
        order by 1, 2
        """,
    )
    return run(conn, "campaign_sessions_per_day", query, params)
