"""dbt build on hand-made raw data with duplicates, invalid lines, bot traffic, a client clock
running ahead, a late event, a sign-in that stitches earlier anonymous events, and a renamed
product, loaded in two batches (the second build incremental)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from warehouse import rawdata
from warehouse.conftest import snapshot_marts
from warehouse.rawdata import BASE_TIME, BOT_UA, event, order_payload

T0 = BASE_TIME  # 2026-03-02 09:00 UTC
LOAD_1 = T0 + timedelta(hours=2)
LOAD_2 = T0 + timedelta(hours=3)


def sessionless(name: str, at, anonymous_id: str, **kwargs) -> dict:
    payload = event(name, at, session_id="-", anonymous_id=anonymous_id, **kwargs)
    del payload["session_id"]
    return payload


def first_batch() -> tuple[list, dict]:
    shopper = {"session_id": "s-shopper", "anonymous_id": "anon-shopper"}
    guest = {"session_id": "s-guest", "anonymous_id": "anon-guest"}
    bot = {"session_id": "s-bot", "anonymous_id": "anon-bot", "user_agent": BOT_UA, "device_type": "other"}
    named = {
        "view": event("page_view", T0, **shopper, path="/"),
        "product": event("product_view", T0 + timedelta(minutes=1), **shopper, product="p-1"),
        "cart": event("add_to_cart", T0 + timedelta(minutes=2), **shopper, product="p-1", quantity=2),
        "guest_view": event("page_view", T0 + timedelta(minutes=3), **guest),
        "guest_product": event("product_view", T0 + timedelta(minutes=4), **guest, product="p-2"),
        "bot_view": event("page_view", T0, **bot),
        "bot_product": event("product_view", T0 + timedelta(seconds=5), **bot, product="p-3"),
        # client clock 10 minutes ahead of the ingest endpoint
        "ahead": event(
            "page_view", T0 + timedelta(minutes=20), **guest, received_at=T0 + timedelta(minutes=10)
        ),
        # an unknown but well-formed event name: kept (and warned about)
        "unknown": event("wishlist_add", T0 + timedelta(minutes=5), **guest, product="p-2"),
        # sent without a session_id (a Segment SDK): its session is derived (fact_events)
        "sessionless": sessionless("page_view", T0 + timedelta(minutes=6), "anon-sdk"),
        # another: two derived sessions 40 minutes apart, which a late event joins (second batch)
        "merge_first": sessionless("page_view", T0, "anon-merge"),
        "merge_second": sessionless("product_view", T0 + timedelta(minutes=40), "anon-merge", product="p-4"),
    }
    bad_date = event("page_view", T0, **guest)
    bad_date["event_timestamp"] = "2026-02-31T10:00:00Z"
    # an empty session_id is broken (one left out is derived by the warehouse: test_derived_sessions.py)
    no_session = dict(event("page_view", T0, **guest), session_id="")
    bad_name = event("page_view", T0, **guest)
    bad_name["event_name"] = "Page View!"
    no_product = event("product_view", T0, **guest)
    lines: list = [
        *named.values(),
        named["product"],  # a retry inside the same object
        bad_date,
        no_session,
        bad_name,
        no_product,
        "[1, 2, 3]",
    ]
    return lines, named


def second_batch(named: dict) -> tuple[list, dict]:
    shopper = {"session_id": "s-shopper", "anonymous_id": "anon-shopper"}
    resent = dict(named["view"], page={"path": "/resent-copy"})
    renamed = dict(rawdata.PRODUCTS["p-1"], name="Trail Shoe II")
    later = {
        "signin": event("sign_in", T0 + timedelta(minutes=30), **shopper, user_id="user-1"),
        "checkout": event("checkout_start", T0 + timedelta(minutes=31), **shopper, user_id="user-1"),
        "purchase": event(
            "purchase",
            T0 + timedelta(minutes=32),
            **shopper,
            user_id="user-1",
            order=order_payload("o-1", [("p-1", 2), ("p-3", 1)]),
        ),
        # happened two days ago, arrives only now
        "late": event(
            "product_view",
            T0 - timedelta(days=2),
            session_id="s-late",
            anonymous_id="anon-late",
            product="p-2",
            received_at=T0 + timedelta(minutes=40),
        ),
        # the sessionless visitor: 20 minutes later (the same derived session, across loads), and
        # a late event 10 minutes before its first one (joins it, its key unchanged)
        "sessionless_next": sessionless(
            "product_view", T0 + timedelta(minutes=26), "anon-sdk", product="p-2"
        ),
        "sessionless_late": sessionless("page_view", T0 - timedelta(minutes=4), "anon-sdk"),
        "merge_bridge": sessionless("page_view", T0 + timedelta(minutes=20), "anon-merge"),
        "rename": event(
            "product_view",
            T0 + timedelta(minutes=33),
            session_id="s-other",
            anonymous_id="anon-o",
            product=renamed,
        ),
    }
    return [resent, *later.values()], later


@pytest.fixture(scope="module")
def messy_warehouse(make_database, dbt):
    env = make_database()
    rawdata.create_raw_schema(env)
    lines_1, named = first_batch()
    rawdata.insert_raw(env, lines_1, loaded_at=LOAD_1, object_key="events/2026/03/02/10/a.json")
    first = dbt(env, "build")
    lines_2, later = second_batch(named)
    rawdata.insert_raw(env, lines_2, loaded_at=LOAD_2, object_key="events/2026/03/02/11/b.json")
    dbt(env, "build")
    return env, named, later, first


def test_first_build_warns_about_unknown_event_names(messy_warehouse):
    *_rest, first = messy_warehouse
    # the test's result line, after dbt's log prefix: "09:00:00  48 of 117 WARN 1
    # accepted_values_fact_events_event_name___var_known_event_names_  [WARN 1 in 0.10s]";
    # the test found the one unknown event name (a passing test prints PASS in its place)
    assert re.search(
        r"^.*\b\d+ of \d+ WARN 1 (?:[\w.]+\.)?accepted_values_fact_events_event_name\w*\s",
        first.stdout,
        re.MULTILINE,
    ), first.stdout[-4000:]


def test_invalid_lines_are_quarantined_with_their_reason(messy_warehouse):
    env, *_rest = messy_warehouse
    reasons = sorted(r for (r,) in rawdata.query(env, "select reason from analytics.rejected_events"))
    assert reasons == [
        "empty session_id",
        "event_timestamp is not an RFC 3339 date-time",
        "malformed event_name",
        "missing product.id",
        "payload is not a JSON object",
    ]


def test_duplicates_bots_late_events_count_once(messy_warehouse):
    env, named, later, _first = messy_warehouse
    rows = dict(rawdata.query(env, "select event_id, page_path from analytics.fact_events"))
    humans = [k for k in named if not k.startswith("bot")]
    assert set(rows) == {named[k]["event_id"] for k in humans} | {e["event_id"] for e in later.values()}
    # the resent copy in batch 2 does not replace the first loaded copy
    assert rows[named["view"]["event_id"]] == "/"
    late = rawdata.query(
        env,
        "select event_date::text from analytics.fact_events where event_id = %s",
        (later["late"]["event_id"],),
    )
    assert late == [("2026-02-28",)]
    hourly = rawdata.query(
        env,
        "select sum(events) from analytics.agg_events_hourly where event_hour = '2026-02-28 09:00+00'",
    )
    assert hourly == [(1,)]
    ahead = rawdata.query(
        env,
        "select event_id from analytics.fact_events where is_client_clock_ahead",
    )
    assert ahead == [(named["ahead"]["event_id"],)]


def test_sessionless_events_share_one_derived_session(messy_warehouse):
    env, named, later, _first = messy_warehouse
    ids = [
        named["sessionless"]["event_id"],
        later["sessionless_next"]["event_id"],
        later["sessionless_late"]["event_id"],
    ]
    sessions = rawdata.query(
        env, "select distinct session_id from analytics.fact_events where event_id = any(%s)", (ids,)
    )
    assert len(sessions) == 1 and sessions[0][0].startswith("sx-")
    [(events,)] = rawdata.query(
        env, "select events from analytics.fact_sessions where session_id = %s", (sessions[0][0],)
    )
    assert events == 3
    merged = rawdata.query(
        env,
        "select count(distinct session_id), count(*) from analytics.fact_events where anonymous_id = 'anon-merge'",
    )
    assert merged == [(1, 3)]
    assert rawdata.query(
        env, "select count(*) from analytics.fact_sessions where anonymous_id = 'anon-merge'"
    ) == [(1,)]


def test_sign_in_stitches_earlier_anonymous_events(messy_warehouse):
    env, named, _later, _first = messy_warehouse
    keys = set(
        rawdata.query(env, "select user_key from analytics.fact_events where anonymous_id = 'anon-shopper'")
    )
    assert keys == {("user-1",)}
    sessions = rawdata.query(
        env,
        "select user_key, has_purchase, revenue from analytics.fact_sessions where session_id = 's-shopper'",
    )
    assert [(k, p, float(r)) for k, p, r in sessions] == [("user-1", True, 192.3)]
    users = rawdata.query(
        env, "select user_key, is_registered, segment, orders from analytics.dim_users order by 1"
    )
    assert ("anon-shopper",) not in {(u[0],) for u in users}
    assert ("user-1", True, "buyer", 1) in users
    funnel = rawdata.query(
        env, "select steps_reached from analytics.fact_funnels where session_id = 's-shopper'"
    )
    assert funnel == [(5,)]


def test_renamed_product_has_one_current_name_everywhere(messy_warehouse):
    env, *_rest = messy_warehouse
    names = rawdata.query(
        env,
        "select distinct product_name from analytics.fact_events where product_id = 'p-1'",
    )
    assert names == [("Trail Shoe II",)]
    items = rawdata.query(env, "select product_id, quantity from analytics.fact_order_items order by 1")
    assert items == [("p-1", 2), ("p-3", 1)]
    # p-3 was only seen by a bot and in the order: the order's item makes it a product
    assert rawdata.query(env, "select product_name from analytics.dim_products where product_id = 'p-3'") == [
        ("Wool Socks",)
    ]


def test_bots_stay_when_exclude_bots_is_off(messy_warehouse, dbt):
    env, named, *_rest = messy_warehouse
    incremental = snapshot_marts(env)
    dbt(env, "build", "--full-refresh")
    assert snapshot_marts(env) == incremental
    dbt(env, "build", "--full-refresh", "--vars", json.dumps({"exclude_bots": False}))
    bots = rawdata.query(env, "select count(*) from analytics.fact_events where is_bot")
    assert bots == [(2,)]
    dbt(env, "build", "--full-refresh")


def test_source_freshness_errors_on_stale_raw_data(messy_warehouse, dbt):
    env, *_rest = messy_warehouse  # newest load: 2026-03-02 12:00 UTC, long past error_after
    result = dbt(env, "source", "freshness", check=False)
    assert result.returncode != 0
    assert "ERROR STALE" in result.stdout


def test_reconciliation_test_catches_a_lost_event(fresh_db, dbt):
    rawdata.create_raw_schema(fresh_db)
    rawdata.insert_raw(fresh_db, rawdata.shop_traffic(10, seed=5))
    dbt(fresh_db, "build")
    select = ["--select", "assert_fact_events_reconcile_with_raw"]
    assert dbt(fresh_db, "test", *select, check=False).returncode == 0
    conn = rawdata.connect(fresh_db)
    with conn, conn.cursor() as cur:
        cur.execute(
            "delete from analytics.fact_events where ctid = (select min(ctid) from analytics.fact_events)"
        )
    conn.close()
    failed = dbt(fresh_db, "test", *select, check=False)
    assert failed.returncode != 0
    assert "FAIL 1 assert_fact_events_reconcile_with_raw" in failed.stdout
