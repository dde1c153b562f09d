"""The behaviour marts on a hand-made history with known answers: journeys (agg_paths_daily),
weekly retention cohorts (agg_retention_weekly) and channel attribution (fact_attribution).
Five users over five weeks: a guest who signs in (her earlier visit becomes hers), a user
signed in from the start, one whose earlier visit falls outside the attribution window, a
guest who buys without signing in, a one-page visitor. Loaded in two batches, the second build
incremental: the guest's sign-in session arrives late (her guest visit and her later order
become one user's; her cohorts move to earlier weeks, leaving one week empty) with a late event
that changes an existing session's path, and the newest week stays where it was (so retention
recomputes only the weeks the batch touched)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from warehouse import rawdata
from warehouse.conftest import snapshot_marts
from warehouse.rawdata import event, order_payload

GOOGLE = {"source": "google", "medium": "organic", "campaign": None}
NEWSLETTER = {"source": "newsletter", "medium": "email", "campaign": "march"}
FACEBOOK = {"source": "facebook", "medium": "social", "campaign": None}
BING = {"source": "bing", "medium": "cpc", "campaign": "winter"}
CPC_SPRING = {"source": "google", "medium": "cpc", "campaign": "spring"}
DIRECT: dict = {}  # no traffic block: (direct) / (none)

ORDERS = {
    "o-a1": order_payload("o-a1", [("p-1", 1)]),  # 89.9
    "o-a2": order_payload("o-a2", [("p-3", 1)]),  # 12.5
    "o-b1": order_payload("o-b1", [("p-2", 1)]),  # 129.0
    "o-c1": order_payload("o-c1", [("p-4", 2)]),  # 118.0
    "o-d1": order_payload("o-d1", [("p-3", 2)]),  # 25.0
    "o-b0": order_payload("o-b0", [("p-2", 1)]),  # 129.0, only in the late file of one test
}


def at(day: str, minute: int = 0) -> datetime:
    return datetime.fromisoformat(f"{day}T10:00:00+00:00") + timedelta(minutes=minute)


def session(session_id, anonymous_id, day, traffic, steps, *, device="desktop", user_from=None, user_id=None):
    """Events of one session: steps are (event name, fields) a minute apart; user_id is sent
    from step user_from on (None: never)."""
    events = []
    for number, (name, fields) in enumerate(steps):
        signed_in = user_from is not None and number >= user_from
        e = event(
            name,
            at(day, number),
            session_id=session_id,
            anonymous_id=anonymous_id,
            user_id=user_id if signed_in else None,
            device_type=device,
            **fields,
        )
        if traffic:
            e["traffic"] = dict(traffic)
        else:
            del e["traffic"]
        events.append(e)
    return events


HOME = ("page_view", {"path": "/"})
PRODUCT_PAGE = ("page_view", {"path": "/p/p-1/trail-shoe"})
CATEGORY_PAGE = ("page_view", {"path": "/c/shoes"})
CART_PAGE = ("page_view", {"path": "/cart"})


def product_view(pid="p-1"):
    return ("product_view", {"product": pid, "path": f"/p/{pid}"})


def cart(pid="p-1", quantity=1):
    return ("add_to_cart", {"product": pid, "quantity": quantity})


def purchase(order_id):
    return ("purchase", {"order": ORDERS[order_id]})


def history() -> tuple[list[dict], list[dict]]:
    """(first batch, second batch) of raw events."""
    first = [
        # alice: a guest on 2 March; signed in on another browser on 24 March, where she buys
        *session("s-a1", "anon-a", "2026-03-02", GOOGLE, [HOME, product_view(), product_view(), HOME]),
        *session(
            "s-a3",
            "anon-a-laptop",
            "2026-03-24",
            DIRECT,
            [HOME, product_view("p-3"), cart("p-3"), ("checkout_start", {}), purchase("o-a2")],
            user_from=0,
            user_id="alice",
        ),
        # bob: signed in throughout, 4 March (facebook) and 18 March (direct, buys)
        *session(
            "s-b1",
            "anon-b",
            "2026-03-04",
            FACEBOOK,
            [HOME, product_view("p-2")],
            user_from=0,
            user_id="bob",
            device="mobile",
        ),
        *session(
            "s-b2",
            "anon-b",
            "2026-03-18",
            DIRECT,
            [CATEGORY_PAGE, product_view("p-2"), cart("p-2"), ("checkout_start", {}), purchase("o-b1")],
            user_from=0,
            user_id="bob",
            device="mobile",
        ),
        # carol: a visit on 1 February (outside the 30-day window of her 5 March order)
        *session("s-c0", "anon-c", "2026-02-01", BING, [HOME], user_from=0, user_id="carol"),
        *session(
            "s-c1",
            "anon-c",
            "2026-03-05",
            CPC_SPRING,
            [PRODUCT_PAGE, cart("p-4", 2), ("checkout_start", {}), purchase("o-c1")],
            user_from=0,
            user_id="carol",
        ),
        # dave: a guest who buys on 11 March and browses on 16 March
        *session(
            "s-d1",
            "anon-d",
            "2026-03-11",
            NEWSLETTER,
            [HOME, product_view("p-3"), cart("p-3", 2), CART_PAGE, ("checkout_start", {}), purchase("o-d1")],
            device="tablet",
        ),
        *session("s-d2", "anon-d", "2026-03-16", DIRECT, [HOME, HOME, HOME], device="tablet"),
        # eve: one page on 6 March
        *session("s-e1", "anon-e", "2026-03-06", GOOGLE, [HOME]),
    ]
    # after the first build: alice's cohorts are the week of 23 March (her one signed-in
    # session) and the guest anon-a is in the week of 2 March; o-a2 has one touch
    second = [
        # late: alice, in the first browser on 10 March, signs in and buys. anon-a is hers from
        # now on: her visitor cohort moves to 2 March, her purchaser cohort to 9 March, the week
        # of 23 March loses its only user, and o-a2 gains two touches (2 and 10 March)
        *session(
            "s-a2",
            "anon-a",
            "2026-03-10",
            NEWSLETTER,
            [
                HOME,
                PRODUCT_PAGE,
                product_view(),
                product_view(),
                cart(),
                ("sign_in", {}),
                ("checkout_start", {}),
                purchase("o-a1"),
            ],
            user_from=5,
            user_id="alice",
        ),
    ]
    # a late event of eve's session: her path becomes home > category
    late = event("page_view", at("2026-03-06", 1), session_id="s-e1", anonymous_id="anon-e", path="/c/shoes")
    late["traffic"] = dict(GOOGLE)
    second.append(late)
    return first, second


# session -> (session_date, device, source, path, has_purchase), worked out by hand
EXPECTED_PATHS = {
    "s-a1": ("2026-03-02", "desktop", "google", "home > product_view > home", False),
    "s-a2": (
        "2026-03-10",
        "desktop",
        "newsletter",
        "home > product > product_view > add_to_cart > sign_in > …",
        True,
    ),
    "s-a3": (
        "2026-03-24",
        "desktop",
        "(direct)",
        "home > product_view > add_to_cart > checkout_start > purchase",
        True,
    ),
    "s-b1": ("2026-03-04", "mobile", "facebook", "home > product_view", False),
    "s-b2": (
        "2026-03-18",
        "mobile",
        "(direct)",
        "category > product_view > add_to_cart > checkout_start > purchase",
        True,
    ),
    "s-c0": ("2026-02-01", "desktop", "bing", "home", False),
    "s-c1": ("2026-03-05", "desktop", "google", "product > add_to_cart > checkout_start > purchase", True),
    "s-d1": (
        "2026-03-11",
        "tablet",
        "newsletter",
        "home > product_view > add_to_cart > other > checkout_start > …",
        True,
    ),
    "s-d2": ("2026-03-16", "tablet", "(direct)", "home", False),
    "s-e1": ("2026-03-06", "desktop", "google", "home > category", False),
}

# purchasing session -> purchase_path (depth 5), worked out by hand: the collapsed steps up to
# and including the first purchase, the last five of them; the others have none
EXPECTED_PURCHASE_PATHS = {
    # seven steps: the purchase lies beyond the path's fifth step, the first two are cut
    "s-a2": "… > product_view > add_to_cart > sign_in > checkout_start > purchase",
    "s-a3": "home > product_view > add_to_cart > checkout_start > purchase",
    "s-b2": "category > product_view > add_to_cart > checkout_start > purchase",
    "s-c1": "product > add_to_cart > checkout_start > purchase",
    # six steps: the first (home) is cut
    "s-d1": "… > product_view > add_to_cart > other > checkout_start > purchase",
}


LOADED = datetime(2026, 3, 25, 1, 5, tzinfo=UTC)


# database -> the behaviour marts' rows (BEHAVIOUR_QUERIES, with dbt_updated_at) after the first build
FIRST_BUILD: dict[str, dict[str, list[tuple]]] = {}


def built_in_two_batches(make_database, dbt) -> dict[str, str]:
    """A database with the history loaded and built in its two batches (the second build
    incremental); what the first build wrote is kept in FIRST_BUILD."""
    env = make_database()
    rawdata.create_raw_schema(env)
    first, second = history()
    rawdata.insert_raw(env, first, loaded_at=LOADED, object_key="events/2026/03/25/00/a.json")
    dbt(env, "build")
    FIRST_BUILD[env["PGDATABASE"]] = written(env)
    rawdata.insert_raw(
        env, second, loaded_at=LOADED + timedelta(hours=1), object_key="events/2026/03/25/01/b.json"
    )
    dbt(env, "build")
    return env


@pytest.fixture(scope="module")
def behaviour_warehouse(make_database, dbt):
    return built_in_two_batches(make_database, dbt)


def test_paths_per_session_worked_out_by_hand(behaviour_warehouse):
    rows = rawdata.query(
        behaviour_warehouse,
        "select session_date::text, device_type, traffic_source, path, purchase_path, sessions, purchase_sessions"
        " from analytics.agg_paths_daily",
    )
    assert set(EXPECTED_PURCHASE_PATHS) == {s for s, (*_, bought) in EXPECTED_PATHS.items() if bought}
    expected: Counter = Counter()
    purchases: Counter = Counter()
    for session_id, (day, device, source, path, bought) in EXPECTED_PATHS.items():
        key = (day, device, source, path, EXPECTED_PURCHASE_PATHS.get(session_id))
        expected[key] += 1
        purchases[key] += int(bought)
    assert {r[:5]: (r[5], r[6]) for r in rows} == {k: (n, purchases[k]) for k, n in expected.items()}
    assert len(rows) == len(expected)


def test_purchase_paths_reconcile_with_purchasing_sessions(behaviour_warehouse):
    """purchase_path comes from the session's purchase event steps and has_purchase
    (fact_sessions) from its purchase events too, so they agree session for session: the
    sessions with a purchase path are exactly the purchasing ones, and a row with a purchase
    path holds only purchasing sessions."""
    env = behaviour_warehouse
    [(with_path, purchasing, total_purchasing, path_rows_not_all_buyers)] = rawdata.query(
        env,
        "select coalesce(sum(sessions) filter (where purchase_path is not null), 0),"
        " coalesce(sum(purchase_sessions) filter (where purchase_path is not null), 0),"
        " sum(purchase_sessions),"
        " count(*) filter (where (purchase_path is not null) <> (purchase_sessions = sessions and sessions > 0))"
        " from analytics.agg_paths_daily",
    )
    [(fact_purchasing,)] = rawdata.query(
        env, "select count(*) from analytics.fact_sessions where has_purchase"
    )
    assert with_path == purchasing == total_purchasing == fact_purchasing == len(EXPECTED_PURCHASE_PATHS)
    assert path_rows_not_all_buyers == 0
    # every purchase path ends in the purchase and keeps at most five steps after the cut mark
    ends = rawdata.query(
        env, "select purchase_path from analytics.agg_paths_daily where purchase_path is not null"
    )
    for (purchase_path,) in ends:
        steps = purchase_path.split(" > ")
        assert steps[-1] == "purchase"
        assert len([s for s in steps if s != "…"]) <= 5 and steps.count("…") <= 1


def test_every_session_is_in_exactly_one_path_row(behaviour_warehouse):
    env = behaviour_warehouse
    per_date = rawdata.query(
        env,
        "select s.session_date, s.sessions, coalesce(p.sessions, 0), s.purchase_sessions, coalesce(p.purchases, 0)"
        " from (select session_date, count(*) as sessions, count(*) filter (where has_purchase) as purchase_sessions"
        "       from analytics.fact_sessions group by 1) as s"
        " left join (select session_date, sum(sessions) as sessions, sum(purchase_sessions) as purchases"
        "            from analytics.agg_paths_daily group by 1) as p using (session_date)",
    )
    assert len(per_date) == 10
    for day, sessions, path_sessions, purchase_sessions, path_purchases in per_date:
        assert (sessions, purchase_sessions) == (path_sessions, path_purchases), day


def test_path_depth_is_a_var(behaviour_warehouse, dbt, make_database):
    env = make_database()
    rawdata.create_raw_schema(env)
    first, second = history()
    rawdata.insert_raw(env, first + second)
    dbt(env, "run", "--select", "+agg_paths_daily", "--vars", '{"path_depth": 2}')
    rows = dict(
        rawdata.query(
            env,
            "select path, sum(sessions)::int from analytics.agg_paths_daily where session_date = '2026-03-10' group by 1",
        )
    )
    assert rows == {"home > product > …": 1}
    purchase_paths = rawdata.query(
        env, "select purchase_path from analytics.agg_paths_daily where session_date = '2026-03-10'"
    )
    assert purchase_paths == [("… > checkout_start > purchase",)]


def test_retention_triangle_worked_out_by_hand(behaviour_warehouse):
    rows = rawdata.query(
        behaviour_warehouse,
        "select cohort_kind, cohort_week::text, weeks_since, sum(cohort_users)::int, sum(retained_users)::int"
        " from analytics.agg_retention_weekly group by 1, 2, 3 order by 1, 2, 3",
    )
    got = {(kind, week): [] for kind, week, *_ in rows}
    sizes = {}
    for kind, week, weeks_since, cohort_users, retained in rows:
        assert weeks_since == len(got[(kind, week)])  # no week missing
        got[(kind, week)].append(retained)
        sizes[(kind, week)] = cohort_users
    # newest week with a session: Monday 23 March
    assert got == {
        # carol: 1 Feb (week of 26 Jan), back on 5 March (5 weeks later)
        ("visitors", "2026-01-26"): [1, 0, 0, 0, 0, 1, 0, 0, 0],
        # alice (her guest visit of 2 March, stitched), bob, eve
        ("visitors", "2026-03-02"): [3, 1, 1, 1],
        # dave (a guest)
        ("visitors", "2026-03-09"): [1, 1, 0],
        ("purchasers", "2026-03-02"): [1, 0, 0, 0],  # carol
        ("purchasers", "2026-03-09"): [2, 0, 1],  # alice (again on 24 March), dave
        ("purchasers", "2026-03-16"): [1, 0],  # bob
    }
    assert sizes == {k: v[0] for k, v in got.items()}


def test_retention_cohorts_are_split_by_their_first_session(behaviour_warehouse):
    rows = rawdata.query(
        behaviour_warehouse,
        "select cohort_kind, device_type, traffic_source, cohort_users, retained_users"
        " from analytics.agg_retention_weekly where cohort_week = '2026-03-02' and weeks_since = 2"
        " order by 1, 2, 3",
    )
    assert rows == [
        ("purchasers", "desktop", "google", 1, 0),  # carol, first purchase from google cpc
        ("visitors", "desktop", "google", 2, 0),  # alice (her guest visit), eve
        ("visitors", "mobile", "facebook", 1, 1),  # bob, back on 18 March
    ]


def test_retained_never_exceeds_the_cohort(behaviour_warehouse):
    bad = rawdata.query(
        behaviour_warehouse,
        "select * from analytics.agg_retention_weekly"
        " where retained_users > cohort_users or (weeks_since = 0 and retained_users <> cohort_users)",
    )
    assert bad == []


def attribution(env) -> dict:
    rows = rawdata.query(
        env,
        "select order_id, model, traffic_source, traffic_medium, coalesce(traffic_campaign, ''),"
        " credit, revenue_credit, user_key from analytics.fact_attribution",
    )
    return {(o, m, s, md, c): (credit, revenue, user) for o, m, s, md, c, credit, revenue, user in rows}


def test_attribution_worked_out_by_hand(behaviour_warehouse):
    got = attribution(behaviour_warehouse)
    d = Decimal
    google, news = ("google", "organic", ""), ("newsletter", "email", "march")
    direct, facebook = ("(direct)", "(none)", ""), ("facebook", "social", "")
    spring = ("google", "cpc", "spring")

    def rows(order, user, first, last, linear):
        out = {(order, "first_touch", *first): (d(1), ORDERS_REVENUE[order], user)}
        out[(order, "last_touch", *last)] = (d(1), ORDERS_REVENUE[order], user)
        for channel, credit, revenue in linear:
            out[(order, "linear", *channel)] = (d(credit), d(revenue), user)
        return out

    expected = {
        # the guest visit of 2 March counts: alice signed in on 10 March
        **rows("o-a1", "alice", google, news, [(google, "0.5", "44.95"), (news, "0.5", "44.95")]),
        # three touches in 30 days; the purchasing (direct) session takes the rounding rest
        **rows(
            "o-a2",
            "alice",
            google,
            direct,
            [(google, "0.333333", "4.17"), (news, "0.333333", "4.17"), (direct, "0.333334", "4.16")],
        ),
        **rows("o-b1", "bob", facebook, direct, [(facebook, "0.5", "64.50"), (direct, "0.5", "64.50")]),
        # carol's bing visit of 1 February is 32 days before the order: outside the window
        **rows("o-c1", "carol", spring, spring, [(spring, "1", "118.00")]),
        # a guest's order, one touch; dave's later visit does not count
        **rows("o-d1", "anon-d", news, news, [(news, "1", "25.00")]),
    }
    assert got == expected


ORDERS_REVENUE = {k: Decimal(str(v["revenue"])) for k, v in ORDERS.items()}


def test_attribution_carries_the_order_date_and_purchase_device(behaviour_warehouse):
    rows = rawdata.query(
        behaviour_warehouse,
        "select distinct order_id, order_date::text, device_type from analytics.fact_attribution order by 1",
    )
    assert rows == [
        ("o-a1", "2026-03-10", "desktop"),
        ("o-a2", "2026-03-24", "desktop"),
        ("o-b1", "2026-03-18", "mobile"),
        ("o-c1", "2026-03-05", "desktop"),
        ("o-d1", "2026-03-11", "tablet"),
    ]


def test_attribution_reconciles_per_order_and_model(behaviour_warehouse):
    sums = rawdata.query(
        behaviour_warehouse,
        "select a.order_id, a.model, sum(a.credit), sum(a.revenue_credit), max(o.revenue)"
        " from analytics.fact_attribution as a"
        " inner join (select order_id, max(order_revenue) as revenue from analytics.fact_events"
        "             where event_name = 'purchase' group by 1) as o using (order_id)"
        " group by 1, 2",
    )
    assert len(sums) == 5 * 3
    for order_id, model, credit, revenue_credit, revenue in sums:
        assert credit == 1, (order_id, model)
        assert revenue_credit == revenue, (order_id, model)


def test_lookback_is_a_var(behaviour_warehouse, dbt, make_database):
    env = make_database()
    rawdata.create_raw_schema(env)
    first, second = history()
    rawdata.insert_raw(env, first + second)
    dbt(env, "run", "--select", "+fact_attribution", "--vars", '{"attribution_lookback_days": 40}')
    got = attribution(env)
    assert got[("o-c1", "first_touch", "bing", "cpc", "winter")][0] == 1
    assert got[("o-c1", "last_touch", "google", "cpc", "spring")][0] == 1


BEHAVIOUR_QUERIES = {
    "agg_paths_daily": "select session_date::text, device_type, traffic_source, path, purchase_path, sessions,"
    " purchase_sessions from analytics.agg_paths_daily order by 1, 2, 3, 4, 5",
    "agg_retention_weekly": "select cohort_kind, cohort_week::text, device_type, traffic_source, weeks_since,"
    " cohort_users, retained_users from analytics.agg_retention_weekly order by 1, 2, 3, 4, 5",
    "fact_attribution": "select order_id, user_key, model, traffic_source, traffic_medium, traffic_campaign,"
    " order_date::text, device_type, touches, credit, revenue_credit from analytics.fact_attribution"
    " order by 1, 3, 4, 5, 6",
}


def written(env) -> dict[str, list[tuple]]:
    """Each behaviour mart's rows (BEHAVIOUR_QUERIES' columns) with the time it was written last."""
    return {
        mart: rawdata.query(env, q.replace(" from analytics.", ", dbt_updated_at from analytics.", 1))
        for mart, q in BEHAVIOUR_QUERIES.items()
    }


def rewritten_keys(before: list[tuple], after: list[tuple], key: int | slice) -> tuple[set, set, set]:
    """Between two `written` snapshots of one mart (``key``: the index of its key column, or a
    slice of its key columns): the keys whose rows were all kept with their write time, those
    with rows written since, and those whose rows are gone."""

    def key_of(row: tuple):
        return row[key]

    kept = {row[:-1]: row[-1] for row in before}
    keys = {key_of(row) for row in after}
    untouched = {k for k in keys if all(kept.get(r[:-1]) == r[-1] for r in after if key_of(r) == k)}
    return untouched, keys - untouched, {key_of(row) for row in before} - keys


COHORT = slice(0, 4)  # agg_retention_weekly's cohort: kind, week, device, source


def test_incremental_equals_full_refresh(behaviour_warehouse, dbt):
    """The second batch (a guest's late sign-in session, a late event; the newest week stays)
    was built incrementally: each behaviour mart kept the rows of the keys it did not touch and
    equals a full rebuild."""
    env = behaviour_warehouse
    first = FIRST_BUILD[env["PGDATABASE"]]
    # the first build: alice's one signed-in session put her in the week of 23 March, the
    # newest week; o-a2 had one touch
    first_cohorts = {
        (kind, week) for kind, week, _d, _s, since, *_ in first["agg_retention_weekly"] if since == 0
    }
    assert {("visitors", "2026-03-23"), ("purchasers", "2026-03-23")} <= first_cohorts
    assert {r[8] for r in first["fact_attribution"] if r[0] == "o-a2"} == {1}
    second = written(env)

    def newest_week(rows) -> str:
        return max(
            (date.fromisoformat(week) + timedelta(weeks=since)).isoformat()
            for _k, week, _d, _s, since, *_ in rows
        )

    assert (
        newest_week(second["agg_retention_weekly"])
        == newest_week(first["agg_retention_weekly"])
        == "2026-03-23"
    )
    # retention rewrote the cohorts whose cells alice's users changed: the guest anon-a's
    # cohort of 2 March is alice's now (same size; she adds weeks 1 and 3), her purchaser
    # cohort is 9 March; the two cohorts of 23 March lost their only user. Every other
    # cohort (eve's late event changes no cell) kept its rows
    changes = rewritten_keys(first["agg_retention_weekly"], second["agg_retention_weekly"], key=COHORT)
    assert changes == (
        {
            ("visitors", "2026-01-26", "desktop", "bing"),
            ("visitors", "2026-03-02", "mobile", "facebook"),
            ("visitors", "2026-03-09", "tablet", "newsletter"),
            ("purchasers", "2026-03-02", "desktop", "google"),
            ("purchasers", "2026-03-09", "tablet", "newsletter"),
            ("purchasers", "2026-03-16", "mobile", "(direct)"),
        },
        {
            ("visitors", "2026-03-02", "desktop", "google"),
            ("purchasers", "2026-03-09", "desktop", "newsletter"),
        },
        {
            ("visitors", "2026-03-23", "desktop", "(direct)"),
            ("purchasers", "2026-03-23", "desktop", "(direct)"),
        },
    )
    # attribution recomputed alice's orders (o-a1, new; o-a2, now of three touches)
    changes = rewritten_keys(first["fact_attribution"], second["fact_attribution"], key=0)
    assert changes == ({"o-b1", "o-c1", "o-d1"}, {"o-a1", "o-a2"}, set())
    incremental = {mart: rawdata.query(env, q) for mart, q in BEHAVIOUR_QUERIES.items()}, snapshot_marts(env)
    dbt(
        env,
        "run",
        "--full-refresh",
        "--select",
        "+agg_paths_daily",
        "int_retention_users",
        "agg_retention_weekly",
        "fact_attribution",
    )
    rebuilt = {mart: rawdata.query(env, q) for mart, q in BEHAVIOUR_QUERIES.items()}, snapshot_marts(env)
    for mart in BEHAVIOUR_QUERIES:
        assert rebuilt[0][mart] == incremental[0][mart], mart
    assert rebuilt[1] == incremental[1]


def test_a_late_earlier_session_moves_cohorts_and_touches_incrementally(make_database, dbt):
    """A late file: bob's visit of 23 February (bing, with a purchase) arrives after both
    batches were built. Incrementally, bob leaves the week-of-2-March visitor cohort and the
    week-of-16-March purchaser cohort for the week of 23 February, and o-b1 (18 March, within
    30 days) gains a first touch; each mart equals a full rebuild."""
    env = built_in_two_batches(make_database, dbt)
    before = rawdata.query(
        env, "select cohort_kind, cohort_week::text from analytics.agg_retention_weekly where weeks_since = 0"
    )
    assert ("visitors", "2026-02-23") not in before
    late = session(
        "s-b0",
        "anon-b",
        "2026-02-23",
        BING,
        [HOME, product_view("p-2"), purchase("o-b0")],
        user_from=0,
        user_id="bob",
        device="mobile",
    )
    rawdata.insert_raw(
        env, late, loaded_at=LOADED + timedelta(hours=2), object_key="events/2026/03/25/02/late.json"
    )
    before_late = written(env)
    dbt(env, "build")
    after_late = written(env)
    # only bob's keys were recomputed: his two new cohorts of 23 February, his old ones (the
    # visitors of 2 March on mobile from facebook, the purchasers of 16 March: he was their
    # only user) are gone, and his orders (o-b0, new; o-b1); every other row kept its write time
    changes = rewritten_keys(
        before_late["agg_retention_weekly"], after_late["agg_retention_weekly"], key=COHORT
    )
    assert changes == (
        {
            ("visitors", "2026-01-26", "desktop", "bing"),
            ("visitors", "2026-03-02", "desktop", "google"),
            ("visitors", "2026-03-09", "tablet", "newsletter"),
            ("purchasers", "2026-03-02", "desktop", "google"),
            ("purchasers", "2026-03-09", "desktop", "newsletter"),
            ("purchasers", "2026-03-09", "tablet", "newsletter"),
        },
        {("visitors", "2026-02-23", "mobile", "bing"), ("purchasers", "2026-02-23", "mobile", "bing")},
        {
            ("visitors", "2026-03-02", "mobile", "facebook"),
            ("purchasers", "2026-03-16", "mobile", "(direct)"),
        },
    )
    changes = rewritten_keys(before_late["fact_attribution"], after_late["fact_attribution"], key=0)
    assert changes == ({"o-a1", "o-a2", "o-c1", "o-d1"}, {"o-b0", "o-b1"}, set())
    incremental = {mart: rawdata.query(env, q) for mart, q in BEHAVIOUR_QUERIES.items()}
    cohorts = {
        (kind, week): (users, retained)
        for kind, week, _d, _s, since, users, retained in incremental["agg_retention_weekly"]
        if since == 0
    }
    assert cohorts[("visitors", "2026-02-23")] == (1, 1)
    assert cohorts[("purchasers", "2026-02-23")] == (1, 1)
    first_touch_b1 = [r for r in incremental["fact_attribution"] if r[0] == "o-b1" and r[2] == "first_touch"]
    assert [r[3] for r in first_touch_b1] == ["bing"]
    dbt(
        env,
        "run",
        "--full-refresh",
        "--select",
        "agg_paths_daily",
        "int_retention_users",
        "agg_retention_weekly",
        "fact_attribution",
    )
    for mart, q in BEHAVIOUR_QUERIES.items():
        assert rawdata.query(env, q) == incremental[mart], mart
