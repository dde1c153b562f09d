"""Sessions for events sent without a session_id (Segment's SDKs): fact_events gives a visitor's
sessionless events, in time order, one session until 30 minutes pass without one (var
session_inactivity_minutes), keyed by its first loaded event. Built in two loads (a session
that goes on across them, a new one after a gap, a late event before a session's start) the
marts equal a full rebuild; events with a session_id keep theirs."""

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
    }
    rawdata.insert_raw(env, first.values(), loaded_at=T0 + timedelta(hours=1))
    dbt(env, "build")
    rawdata.insert_raw(env, second.values(), loaded_at=T0 + timedelta(hours=2))
    dbt(env, "build")
    return env, {**first, **second}


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
    assert sessions == 5  # a: 2, b: 2, c: 1


def test_incremental_equals_full_rebuild(derived_warehouse, dbt):
    env, _events = derived_warehouse
    incremental = snapshot_marts(env)
    dbt(env, "build", "--full-refresh")
    assert snapshot_marts(env) == incremental
