"""dbt build on generated traffic (with bots, duplicates, invalid and late events), loaded
hour by hour and built incrementally: the marts agree with counts computed from the raw
lines, and an incremental warehouse equals a full rebuild."""

from __future__ import annotations

from collections import Counter

from warehouse import rawdata
from warehouse.conftest import snapshot_marts


def test_fact_events_counts_match_the_raw_lines(generated_warehouse):
    env, lines, expected = generated_warehouse
    assert expected.bots > 0 and expected.invalid_lines > 0
    assert len({line.get("event_id") for line in lines}) < len(lines), "generated data has no duplicates"

    [(total,)] = rawdata.query(env, "select count(*) from analytics.fact_events")
    assert total == len(expected.events)

    by_name = dict(rawdata.query(env, "select event_name, count(*) from analytics.fact_events group by 1"))
    assert by_name == dict(expected.by_event_name())

    [(rejected,)] = rawdata.query(env, "select count(*) from analytics.rejected_events")
    assert rejected == expected.invalid_lines

    [(bots,)] = rawdata.query(env, "select count(*) from analytics.fact_events where is_bot")
    assert bots == 0


def test_order_items_sessions_and_funnels_are_consistent(generated_warehouse):
    env, _lines, expected = generated_warehouse
    purchases = [e for e in expected.events if e["event_name"] == "purchase"]
    orders = {e["order"]["order_id"]: e for e in purchases}
    [(items, units)] = rawdata.query(env, "select count(*), sum(quantity) from analytics.fact_order_items")
    assert items == sum(len(e["order"]["items"]) for e in orders.values())
    assert units == sum(item.get("quantity", 1) for e in orders.values() for item in e["order"]["items"])

    sessions = Counter(e["session_id"] for e in expected.events)
    got = dict(rawdata.query(env, "select session_id, events from analytics.fact_sessions"))
    assert got == dict(sessions)

    [(purchase_sessions,)] = rawdata.query(
        env, "select count(*) from analytics.fact_sessions where has_purchase"
    )
    assert purchase_sessions == len({e["session_id"] for e in purchases})

    # the daily funnel aggregate adds up to the per-session funnel
    [(funnel_sessions, reached_purchase)] = rawdata.query(
        env, "select count(*), count(purchase_at) from analytics.fact_funnels"
    )
    [(agg_sessions, agg_purchase)] = rawdata.query(
        env, "select sum(sessions), sum(purchase_sessions) from analytics.agg_funnel_daily"
    )
    assert (agg_sessions, agg_purchase) == (funnel_sessions, reached_purchase)
    assert funnel_sessions == len(sessions)

    # the time-to-purchase and campaign aggregates: exact values, same totals as the facts
    assert rawdata.query(
        env,
        "select seconds_to_purchase, count(*) from analytics.fact_funnels where purchase_at is not null"
        " group by 1 order by 1",
    ) == rawdata.query(
        env,
        "select seconds_to_purchase, sum(purchase_sessions) from analytics.agg_time_to_purchase_daily"
        " where purchase_sessions > 0 group by 1 order by 1",
    )
    assert rawdata.query(
        env,
        "select count(product_view_at), count(*) filter (where product_view_at is not null"
        " and checkout_start_at is not null) from analytics.fact_funnels",
    ) == rawdata.query(
        env,
        "select sum(product_view_sessions), sum(product_view_to_checkout_sessions)"
        " from analytics.agg_time_to_purchase_daily",
    )
    assert rawdata.query(
        env,
        "select session_date, traffic_campaign, count(*), count(*) filter (where has_purchase), sum(revenue)"
        " from analytics.fact_sessions group by 1, 2 order by 1, 2",
    ) == rawdata.query(
        env,
        "select session_date, traffic_campaign, sum(sessions), sum(purchase_sessions), sum(revenue)"
        " from analytics.agg_campaign_daily group by 1, 2 order by 1, 2",
    )

    [(hourly_total,)] = rawdata.query(env, "select sum(events) from analytics.agg_events_hourly")
    assert hourly_total == len(expected.events)

    views = dict(
        rawdata.query(env, "select product_id, sum(views) from analytics.agg_product_daily group by 1")
    )
    assert {k: v for k, v in views.items() if v} == dict(expected.product_views())


def test_every_user_key_is_one_dim_users_row(generated_warehouse):
    env, _lines, expected = generated_warehouse
    [(users, registered)] = rawdata.query(
        env, "select count(*), count(*) filter (where is_registered) from analytics.dim_users"
    )
    [(keys,)] = rawdata.query(env, "select count(distinct user_key) from analytics.fact_events")
    assert users == keys
    # identity stitching: an anonymous_id seen with a user_id has no guest row left
    [(stitched_guests,)] = rawdata.query(
        env,
        "select count(*) from analytics.dim_users d join intermediate.int_users_stitched s"
        " on s.anonymous_id = d.user_key where d.user_id is null",
    )
    assert stitched_guests == 0
    assert registered == len({e["user_id"] for e in expected.events if e.get("user_id")})


def test_incremental_builds_equal_a_full_rebuild(generated_warehouse, dbt):
    env, _lines, _expected = generated_warehouse
    incremental = snapshot_marts(env)
    dbt(env, "build", "--full-refresh")
    rebuilt = snapshot_marts(env)
    for mart in incremental:
        assert incremental[mart] == rebuilt[mart], f"{mart} differs after a full rebuild"


def test_a_rebuild_of_fact_events_alone_is_counted_once(generated_warehouse, dbt):
    """The additive aggregates (agg_events_hourly, agg_product_daily's views and adds to cart)
    add the events inserted since they last ran. A full refresh of fact_events on its own gives
    every event a new inserted_at: the next build sees it (fact_events records its full builds)
    and counts from scratch instead of adding every event a second time."""
    env, _lines, _expected = generated_warehouse
    before = snapshot_marts(env)
    dbt(env, "build", "--full-refresh", "--select", "fact_events")
    [(recorded,)] = rawdata.query(
        env,
        "select count(*) from intermediate.dbt_incremental_runs where model_name = 'fact_events (full build)'",
    )
    assert recorded == 1
    dbt(env, "build")
    after = snapshot_marts(env)
    for mart in ("agg_events_hourly", "agg_product_daily", "agg_product_daily_totals"):
        assert after[mart] == before[mart], f"{mart} differs after fact_events was rebuilt alone"
    # and the next build adds nothing
    dbt(env, "build")
    assert snapshot_marts(env)["agg_events_hourly"] == before["agg_events_hourly"]
