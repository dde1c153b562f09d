"""The Overview page's own query (its funnel and top products come from `funnel.py` and
`products.py`)."""

from __future__ import annotations

from datetime import date

from .base import QueryResult, _list_or_none, _q, period, run, segment_filter

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
