"""Sessions for events sent without a session_id (Segment's SDKs): fact_events gives a visitor's
sessionless events, in time order, one session until 30 minutes pass without one (var
session_inactivity_minutes), keyed by its first loaded event. Built in three loads (a session
that goes on across them, a new one after a gap, a late event before a session's start, and
late events that join two sessions into one: on the same day, across midnight, one with a
purchase, one whose survivor is the later session) the marts equal a full rebuild, and no mart
holds a retired session's key; events with a session_id keep theirs."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from warehouse import rawdata
from warehouse.conftest import snapshot_marts
from warehouse.rawdata import BASE_TIME, event, order_payload

T0 = BASE_TIME  # 2026-03-02 09:00 UTC


def sessionless(name: str, minutes: float, anonymous_id: str, **kwargs) -> dict:
    payload = event(
        name, T0 + timedelta(minutes=minutes), session_id="-", anonymous_id=anonymous_id, **kwargs
    )
    del payload["session_id"]
    return payload


def derived_id(anonymous_id: str, *first_loaded: dict) -> str:
    """The key of a derived session: its first loaded event (the lowest event_id of its
    earliest load)."""
    first = min(e["event_id"] for e in first_loaded)
    return "sx-" + hashlib.md5(f"{anonymous_id}/{first}".encode()).hexdigest()  # noqa: S324


DAY_END = 14 * 60 + 50  # 23:50, in minutes after T0 (09:00)
DAY = 24 * 60


@pytest.fixture(scope="module")
def derived_warehouse(make_database, dbt):
    env = make_database()
    rawdata.create_raw_schema(env)
    first = {
        # visitor a: 09:00 .. 09:25 one session (gaps of 20 and 5 minutes) ...
        "a1": sessionless("page_view", 0, "anon-a"),
        "a2": sessionless("product_view", 20, "anon-a", product="p-1"),
        "a3": sessionless("add_to_cart", 25, "anon-a", product="p-1", quantity=1),
        # visitor b: two sessions, 31 minutes apart
        "b1": sessionless("page_view", 0, "anon-b"),
        "b2": sessionless("page_view", 31, "anon-b"),
        # visitor c sends session ids: kept
        "c1": event("page_view", T0, session_id="s-c", anonymous_id="anon-c"),
        "c2": event("page_view", T0 + timedelta(hours=2), session_id="s-c", anonymous_id="anon-c"),
        # visitor d: two sessions 40 minutes apart, joined by a late event in the second load
        "d1": sessionless("page_view", 0, "anon-d"),
        "d2": sessionless("product_view", 40, "anon-d", product="p-3"),
        # visitor e: 23:50 and 00:30 the next day (alone on that day), joined in the second load
        "e1": sessionless("page_view", DAY_END, "anon-e"),
        "e2": sessionless("add_to_cart", DAY_END + 40, "anon-e", product="p-4", quantity=2),
        # visitor f: a page view, then 40 minutes later a signed-in purchase; joined later
        "f1": sessionless("page_view", 0, "anon-f", source="newsletter"),
        "f2": sessionless("purchase", 40, "anon-f", user_id="u-f", order=order_payload("o-f", [("p-2", 1)])),
        # visitor g, a day later: its session at 00:30 on 4 March is loaded first ...
        "g2": sessionless("page_view", DAY + DAY_END + 40, "anon-g", source="bing"),
    }
    second = {
        # ... that goes on in the next load (09:50, 25 minutes after a3) with a purchase
        "a4": sessionless("checkout_start", 50, "anon-a"),
        "a5": sessionless("purchase", 52, "anon-a", order=order_payload("o-a", [("p-1", 1)])),
        # and a new session at 11:00
        "a6": sessionless("page_view", 120, "anon-a"),
        # b: 10 minutes after b2, same session
        "b3": sessionless("product_view", 41, "anon-b", product="p-2"),
        # b: a late event 10 minutes before b1 joins b1's session, which keeps its key
        "b0": sessionless("page_view", -10, "anon-b"),
        # d, e, f: the late events within 30 minutes of both sessions: each visitor's two
        # sessions become one, keyed by its first loaded event (of the first load)
        "d_bridge": sessionless("page_view", 20, "anon-d"),
        "e_bridge": sessionless("page_view", DAY_END + 20, "anon-e"),
        "f_bridge": sessionless("product_view", 20, "anon-f", product="p-2"),
        # ... g: a late session the evening before, 40 minutes earlier: a session of its own
        "g1": sessionless("page_view", DAY + DAY_END, "anon-g", source="google"),
    }
    third = {
        # g: the event between them joins them; the survivor is the next-day session (loaded
        # first), which moves to the evening before
        "g_bridge": sessionless("page_view", DAY + DAY_END + 20, "anon-g"),
    }
    loads = [first, second, third]
    for hours, load in enumerate(loads, start=1):
        rawdata.insert_raw(env, load.values(), loaded_at=T0 + timedelta(hours=hours))
        dbt(env, "build")
    return env, {key: value for load in loads for key, value in load.items()}


def test_sessions_split_at_thirty_minutes_of_inactivity(derived_warehouse):
    env, events = derived_warehouse
    rows = dict(rawdata.query(env, "select event_id, session_id from analytics.fact_events"))
    session = {name: rows[payload["event_id"]] for name, payload in events.items()}
    a = derived_id("anon-a", events["a1"], events["a2"], events["a3"])
    a_later = derived_id("anon-a", events["a6"])
    assert [session[k] for k in ("a1", "a2", "a3", "a4", "a5", "a6")] == [a] * 5 + [a_later]
    b, b_later = derived_id("anon-b", events["b1"]), derived_id("anon-b", events["b2"])
    assert [session[k] for k in ("b0", "b1", "b2", "b3")] == [b, b, b_later, b_later]
    assert session["c1"] == session["c2"] == "s-c"


def test_derived_sessions_in_the_marts(derived_warehouse):
    env, events = derived_warehouse
    a = derived_id("anon-a", events["a1"], events["a2"], events["a3"])
    [(count, views, revenue)] = rawdata.query(
        env,
        "select events, product_views, revenue::float from analytics.fact_sessions where session_id = %s",
        (a,),
    )
    assert (count, views, revenue) == (5, 1, 89.9)
    [(steps,)] = rawdata.query(
        env, "select steps_reached from analytics.fact_funnels where session_id = %s", (a,)
    )
    assert steps == 5
    [(sessions,)] = rawdata.query(env, "select count(*) from analytics.fact_sessions")
    assert sessions == 9  # a: 2, b: 2, c: 1, d, e, f, g: 1 each


def merged_and_retired(events: dict) -> tuple[dict[str, str], set[str]]:
    """Per visitor d, e, f, g: the key of the one session its events make, and the keys of the
    sessions it was before a late event joined them (retired, apart from the survivor's)."""
    merged = {
        "d": derived_id("anon-d", events["d1"], events["d2"]),
        "e": derived_id("anon-e", events["e1"], events["e2"]),
        "f": derived_id("anon-f", events["f1"], events["f2"]),
        "g": derived_id("anon-g", events["g2"]),
    }
    before = {
        derived_id(f"anon-{visitor}", events[f"{visitor}{number}"]) for visitor in "defg" for number in (1, 2)
    }
    return merged, before - set(merged.values())


def test_late_events_join_two_sessions_into_one(derived_warehouse):
    env, events = derived_warehouse
    rows = dict(rawdata.query(env, "select event_id, session_id from analytics.fact_events"))
    merged, retired = merged_and_retired(events)
    assert len(retired) == 4
    for visitor, key in merged.items():
        names = [name for name in events if name[0] == visitor]
        assert {rows[events[name]["event_id"]] for name in names} == {key}, visitor
    sessions = {
        row[0]: row[1:]
        for row in rawdata.query(
            env,
            "select session_id, session_date::text, events, user_key, revenue::float, traffic_source"
            " from analytics.fact_sessions where session_id = any(%s)",
            (list(merged.values()),),
        )
    }
    assert sessions == {
        merged["d"]: ("2026-03-02", 3, "anon-d", 0.0, "google"),
        # the next day's session moved to the evening it now starts on
        merged["e"]: ("2026-03-02", 3, "anon-e", 0.0, "google"),
        merged["f"]: ("2026-03-02", 3, "u-f", 129.0, "newsletter"),
        # the survivor is the later session (loaded first): it moved to the evening before
        merged["g"]: ("2026-03-03", 3, "anon-g", 0.0, "google"),
    }
    [(order_session,)] = rawdata.query(
        env, "select distinct session_id from analytics.fact_order_items where order_id = 'o-f'"
    )
    assert order_session == merged["f"]
    [(user_sessions,)] = rawdata.query(env, "select sessions from analytics.dim_users where user_key = 'u-f'")
    assert user_sessions == 1
    # e's later session was alone on 3 March and g's on 4 March: the daily aggregates count
    # g's merged session on 3 March and keep no row of 4 March
    for aggregate in ("agg_funnel_daily", "agg_campaign_daily", "agg_paths_daily"):
        assert rawdata.query(
            env,
            f"select session_date::text, sum(sessions)::int from analytics.{aggregate}"  # noqa: S608
            " where session_date > '2026-03-02' group by 1",
        ) == [("2026-03-03", 1)], aggregate
    assert rawdata.query(
        env,
        "select session_date::text, sum(product_view_sessions)::int from analytics.agg_time_to_purchase_daily"
        " where session_date > '2026-03-02' group by 1",
    ) == [("2026-03-03", 0)]


def test_no_table_keeps_a_retired_session(derived_warehouse):
    """Every text column of every table the build writes, but the record of the moves
    (intermediate.session_moves) and the events' previous_session_id, which say what moved."""
    env, events = derived_warehouse
    _merged, retired = merged_and_retired(events)
    columns = rawdata.query(
        env,
        "select c.table_schema, c.table_name, c.column_name from information_schema.columns as c"
        " join information_schema.tables as t using (table_schema, table_name)"
        " where t.table_type = 'BASE TABLE' and c.data_type = 'text'"
        " and c.table_schema in ('staging', 'intermediate', 'analytics')"
        " and c.column_name != 'previous_session_id'"
        " and (c.table_schema, c.table_name) != ('intermediate', 'session_moves')",
    )
    assert any(table == "fact_sessions" for _schema, table, _column in columns)
    found = [
        f"{schema}.{table}.{column}"
        for schema, table, column in columns
        if rawdata.query(
            env,
            f'select count(*) from "{schema}"."{table}" where "{column}" = any(%s)',  # noqa: S608
            (sorted(retired),),
        )
        != [(0,)]
    ]
    assert found == []
    recorded = {
        row[0]
        for row in rawdata.query(env, "select session_id from intermediate.session_moves where is_retired")
    }
    assert recorded == retired


def test_incremental_equals_full_rebuild(derived_warehouse, dbt):
    env, _events = derived_warehouse
    incremental = snapshot_marts(env)
    dbt(env, "build", "--full-refresh")
    assert snapshot_marts(env) == incremental
