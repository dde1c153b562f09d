"""The Behaviour page's queries: journeys (`agg_paths_daily`), weekly retention cohorts
(`agg_retention_weekly`) and channel attribution (`fact_attribution`).

A path is the session's first steps joined with ' > ' (then ' > …' when it went on), as the
dbt project builds it (var `path_depth`); a purchase path is the last steps up to a session's
first purchase ('… > ' before them when earlier ones were cut). The flow between steps is
worked out here by splitting the paths. Each function takes the shared filters (dates, devices, sources) and
binds every value.
"""

from __future__ import annotations

from datetime import date

from .base import QueryResult, _q, period, run, segment_filter

# the cohorts a user may pick: key -> label (the key is bound, and checked here first)
RETENTION_KINDS = {"visitors": "Visitors (came back)", "purchasers": "Purchasers (bought again)"}
ATTRIBUTION_MODELS = ("first_touch", "last_touch", "linear")
PATH_SEPARATOR = " > "
PATH_GOES_ON = "…"  # the last step of a path cut at the depth
TOP_PATHS = 20


def top_paths(
    conn, start: date, end: date, devices=None, sources=None, limit: int = TOP_PATHS
) -> QueryResult:
    """The most frequent paths from session start: sessions, their share of all sessions,
    sessions with a purchase and their conversion."""
    segment, params = segment_filter(devices, sources, indent=14)
    query = _q(
        """
        with per_path as (
            select path,
                   sum(sessions)::bigint as sessions,
                   sum(purchase_sessions)::bigint as purchase_sessions
            from analytics.agg_paths_daily
            where session_date between %(start)s and %(end)s""",
        segment,
        """
            group by path
        )
        select path,
               sessions,
               round(100.0 * sessions / nullif(sum(sessions) over (), 0), 1) as share_pct,
               purchase_sessions,
               round(100.0 * purchase_sessions / nullif(sessions, 0), 2) as conversion_pct
        from per_path
        order by sessions desc, path
        limit %(limit)s
        """,
    )
    return run(conn, "top_paths", query, {**period(start, end, params), "limit": int(limit)})


def top_purchase_paths(
    conn, start: date, end: date, devices=None, sources=None, limit: int = TOP_PATHS
) -> QueryResult:
    """The paths that end in a purchase, most frequent first: a purchasing session's steps up
    to and including its first purchase, the last var `path_depth` of them ('… > ' before them
    when earlier steps were cut), as the dbt project builds `purchase_path`; with the sessions
    that took each and their share of all purchasing sessions."""
    segment, params = segment_filter(devices, sources, indent=14)
    query = _q(
        """
        with per_purchase_path as (
            select purchase_path,
                   sum(purchase_sessions)::bigint as purchase_sessions
            from analytics.agg_paths_daily
            where session_date between %(start)s and %(end)s
              and purchase_path is not null""",
        segment,
        """
            group by purchase_path
        )
        select purchase_path,
               purchase_sessions,
               round(100.0 * purchase_sessions / nullif(sum(purchase_sessions) over (), 0), 1)
                   as share_of_purchases_pct
        from per_purchase_path
        order by purchase_sessions desc, purchase_path
        limit %(limit)s
        """,
    )
    return run(conn, "top_purchase_paths", query, {**period(start, end, params), "limit": int(limit)})


def path_flows(
    conn, start: date, end: date, first_step: str | None = None, devices=None, sources=None
) -> QueryResult:
    """Sessions going from step n to step n + 1 (the Sankey's links), over the paths of the
    filtered sessions; `first_step` (bound; None: any) keeps only the paths starting with it."""
    segment, params = segment_filter(devices, sources, indent=14)
    query = _q(
        """
        with per_path as (
            select path, sum(sessions)::bigint as sessions
            from analytics.agg_paths_daily
            where session_date between %(start)s and %(end)s
              and (%(first_step)s::text is null or split_part(path, ' > ', 1) = %(first_step)s::text)""",
        segment,
        """
            group by path
        ),
        steps as (
            select per_path.path, per_path.sessions, s.step, s.step_number
            from per_path
            cross join lateral unnest(string_to_array(per_path.path, ' > '))
                with ordinality as s (step, step_number)
            where s.step <> '…'
        )
        select this_step.step_number::int as step_number,
               this_step.step as from_step,
               next_step.step as to_step,
               sum(this_step.sessions)::bigint as sessions
        from steps as this_step
        inner join steps as next_step
            on next_step.path = this_step.path
           and next_step.step_number = this_step.step_number + 1
        group by 1, 2, 3
        order by 1, sessions desc, 2, 3
        """,
    )
    params = {**period(start, end, params), "first_step": first_step or None}
    return run(conn, "path_flows", query, params)


def retention_weekly(conn, start: date, end: date, kind: str, devices=None, sources=None) -> QueryResult:
    """The retention triangle: per cohort week (the cohorts whose week overlaps the dates) and
    weeks since, the cohort's users, those retained and their share. `kind`: visitors (any
    session) or purchasers (bought again). Device and source are those of the session that
    put the user in the cohort."""
    if kind not in RETENTION_KINDS:
        raise ValueError(f"unknown cohort kind: {kind!r}")
    segment, params = segment_filter(devices, sources)
    query = _q(
        """
        select cohort_week,
               weeks_since,
               sum(cohort_users)::bigint as cohort_users,
               sum(retained_users)::bigint as retained_users,
               round(100.0 * sum(retained_users) / nullif(sum(cohort_users), 0), 1) as retained_pct
        from analytics.agg_retention_weekly
        where cohort_kind = %(kind)s
          and cohort_week between date_trunc('week', %(start)s::date)::date and %(end)s""",
        segment,
        """
        group by 1, 2
        order by 1, 2
        """,
    )
    return run(conn, "retention_weekly", query, {**period(start, end, params), "kind": kind})


def attribution_by_channel(conn, start: date, end: date, devices=None, sources=None) -> QueryResult:
    """Orders and revenue credited to each traffic source by each model (first touch, last
    touch, linear), for the orders of the dates (UTC order date); the device is the purchasing
    session's, the source the credited touch's."""
    segment, params = segment_filter(devices, sources)
    query = _q(
        """
        select traffic_source,
               model,
               round(sum(credit), 2) as attributed_orders,
               sum(revenue_credit) as revenue,
               round(100.0 * sum(revenue_credit)
                     / nullif(sum(sum(revenue_credit)) over (partition by model), 0), 1) as revenue_share_pct
        from analytics.fact_attribution
        where order_date between %(start)s and %(end)s""",
        segment,
        """
        group by 1, 2
        order by 1, array_position(array['first_touch', 'last_touch', 'linear'], model)
        """,
    )
    return run(conn, "attribution_by_channel", query, period(start, end, params))
