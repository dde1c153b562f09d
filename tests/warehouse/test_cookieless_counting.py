"""Cookieless visitors in the marts: events stored in cookieless form by the ingest endpoint
(ingest/cookieless.py, a salt per day) count in that day's sessions, funnel and products, are
a different visitor on another day, and are never stitched to a user."""

from __future__ import annotations

from datetime import timedelta

from ingest.cookieless import make_cookieless
from tests.warehouse import rawdata

HEADERS = {"user-agent": rawdata.BROWSER_UA, "sec-gpc": "1"}
DAY1, DAY2 = rawdata.BASE_TIME, rawdata.BASE_TIME + timedelta(days=1)


def shopper_day(at, salt: bytes) -> list[dict]:
    """One browser's visit, as the browser sent it (its own ids, signed in) and stored cookieless."""
    sent = [
        rawdata.event("page_view", at, session_id="s-own", anonymous_id="anon-own"),
        rawdata.event(
            "product_view",
            at + timedelta(minutes=1),
            session_id="s-own",
            anonymous_id="anon-own",
            product="p-1",
        ),
        rawdata.event(
            "add_to_cart",
            at + timedelta(minutes=2),
            session_id="s-own",
            anonymous_id="anon-own",
            product="p-1",
            quantity=1,
        ),
        rawdata.event(
            "sign_in",
            at + timedelta(minutes=3),
            session_id="s-own",
            anonymous_id="anon-own",
            user_id="user-own",
        ),
    ]
    return [make_cookieless(event, salt, "203.0.113.0/24", HEADERS) for event in sent]


def test_cookieless_visitors_count_per_day_and_are_never_stitched(make_database, dbt):
    env = make_database()
    rawdata.create_raw_schema(env)
    first, second = shopper_day(DAY1, b"a" * 32), shopper_day(DAY2, b"b" * 32)
    rawdata.insert_raw(env, [*first, *second])
    dbt(env, "build", "--exclude", "tag:full_scan")

    sessions = rawdata.query(
        env, "select session_date, user_key, events from analytics.fact_sessions order by session_date"
    )
    assert [(day, events) for day, _, events in sessions] == [(DAY1.date(), 4), (DAY2.date(), 4)]
    visitors = {user_key for _, user_key, _ in sessions}
    assert len(visitors) == 2 and all(v.startswith("cl-") for v in visitors), "a new visitor each day"
    assert rawdata.query(env, "select count(*) from analytics.fact_events where user_id is not null") == [
        (0,)
    ]
    assert rawdata.query(env, "select count(*) from intermediate.int_users_stitched") == [(0,)]
    text = str(rawdata.query(env, "select * from analytics.fact_events"))
    for own in ("anon-own", "s-own", "user-own"):
        assert own not in text
    # they count in the day's product figures
    assert rawdata.query(
        env,
        "select event_date, sum(views), sum(add_to_carts) from analytics.agg_product_daily"
        " where product_id = 'p-1' group by 1 order by 1",
    ) == [(DAY1.date(), 1, 1), (DAY2.date(), 1, 1)]
