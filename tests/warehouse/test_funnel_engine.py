"""analytics.funnel(spec): every answer equals a brute-force reference over the raw lines
(tests/warehouse/funnel_oracle.py), the canonical funnel equals fact_funnels, and a bad spec gets
an error that names what is wrong."""

from __future__ import annotations

import json

import psycopg2
import pytest

from warehouse import funnel_oracle, rawdata

FUNNEL = "select breakdown, step, entities, median_seconds_from_previous from analytics.funnel(%s::jsonb)"


class Seconds(float):
    """A median in seconds: equal within a millisecond (event times are kept to the millisecond,
    the engine reads them as epoch seconds in double precision)."""

    def __eq__(self, other):
        return other is not None and abs(float(self) - float(other)) < 0.002

    __hash__ = float.__hash__


def run_funnel(env, spec: dict) -> list[tuple]:
    return [
        (b, step, entities, None if median is None else Seconds(median))
        for b, step, entities, median in rawdata.query(env, FUNNEL, (json.dumps(spec),))
    ]


def oracle(events, sessions, spec) -> list[tuple]:
    return funnel_oracle.funnel(events, spec, sessions)


def ordered_rows(rows):
    return sorted(rows, key=lambda r: (r[0] is not None, r[0] or "", r[1]))


@pytest.fixture(scope="module")
def generated(generated_warehouse):
    env, lines, _ = generated_warehouse
    events = funnel_oracle.events_from_lines(lines)
    return env, events, funnel_oracle.sessions_from_lines(events, lines)


SPECS = {
    "canonical": {
        "steps": [
            {"event": e} for e in ("page_view", "product_view", "add_to_cart", "checkout_start", "purchase")
        ]
    },
    "window 10 minutes": {
        "steps": [{"event": "product_view"}, {"event": "add_to_cart"}, {"event": "purchase"}],
        "window": "10 minutes",
    },
    "users, 1 day": {
        "steps": [{"event": "product_view"}, {"event": "purchase"}],
        "count": "users",
        "window": "1 day",
    },
    "repeated step": {
        "steps": [{"event": "product_view"}, {"event": "product_view"}, {"event": "add_to_cart"}]
    },
    "any order": {
        "steps": [{"event": "add_to_cart"}, {"event": "product_view"}, {"event": "search"}],
        "order": "any",
        "window": "30 minutes",
    },
    "any order, repeated": {
        "steps": [{"event": "product_view"}, {"event": "product_view"}, {"event": "page_view"}],
        "order": "any",
        "window": "5 minutes",
    },
    "breakdown device": {"steps": [{"event": "page_view"}, {"event": "add_to_cart"}], "breakdown": "device"},
    "breakdown source, users": {
        "steps": [{"event": "product_view"}, {"event": "checkout_start"}],
        "breakdown": "source",
        "count": "users",
    },
    "breakdown brand": {
        "steps": [{"event": "product_view"}, {"event": "add_to_cart"}, {"event": "purchase"}],
        "breakdown": "brand",
    },
    "breakdown category": {
        "steps": [{"event": "product_view"}, {"event": "purchase"}],
        "breakdown": "category",
    },
    "device filter": {
        "steps": [{"event": "page_view"}, {"event": "purchase"}],
        "device": ["mobile", "tablet"],
    },
}


@pytest.mark.parametrize("name", list(SPECS))
def test_the_funnel_equals_the_reference_on_generated_traffic(generated, name):
    env, events, sessions = generated
    days = sorted({ev.at.date() for ev in events})
    for first, last in ((days[0], days[-1]), (days[1], days[1])):
        spec = {**SPECS[name], "from": first.isoformat(), "to": last.isoformat()}
        assert ordered_rows(run_funnel(env, spec)) == ordered_rows(oracle(events, sessions, spec)), spec


def test_step_filters_equal_the_reference(generated):
    env, events, sessions = generated
    days = sorted({ev.at.date() for ev in events})
    viewed = [ev for ev in events if ev.name == "product_view" and ev.category and ev.brand]
    sample = viewed[len(viewed) // 2]
    prefix = sample.category.split(".")[0]
    prices = sorted(ev.price for ev in viewed if ev.price is not None)
    paths = sorted(
        ev.page_path
        for ev in events
        if ev.name == "page_view" and ev.page_path and ev.page_path.count("/") > 1
    )
    path_prefix = "/".join(paths[len(paths) // 2].split("/")[:2])
    queries = sorted(ev.search for ev in events if ev.name == "search" and ev.search)
    query_part = queries[len(queries) // 2].strip()[1:4].upper()
    steps_variants = [
        [{"event": "product_view", "category": prefix}, {"event": "add_to_cart"}],
        [{"event": "product_view", "category": sample.category}, {"event": "purchase", "category": prefix}],
        [
            {"event": "product_view", "brand": sample.brand.upper()},
            {"event": "add_to_cart", "brand": sample.brand},
        ],
        [
            {"event": "product_view", "product_id": sample.product_id},
            {"event": "purchase", "product_id": sample.product_id},
        ],
        [
            {"event": "product_view", "price_min": prices[len(prices) // 2]},
            {"event": "add_to_cart", "price_max": prices[len(prices) // 3]},
        ],
        [{"event": "page_view", "page_path": path_prefix}, {"event": "product_view"}],
        [{"event": "search", "search": query_part}, {"event": "product_view"}],
    ]
    for steps in steps_variants:
        spec = {"steps": steps, "from": days[0].isoformat(), "to": days[-1].isoformat()}
        expected = oracle(events, sessions, spec)
        assert expected[0][2] > 0, spec  # the filter picks something
        assert ordered_rows(run_funnel(env, spec)) == ordered_rows(expected), spec


def test_the_canonical_funnel_equals_fact_funnels(generated):
    env, events, _ = generated
    days = sorted({ev.at.date() for ev in events})
    spec = {**SPECS["canonical"], "from": days[0].isoformat(), "to": days[-1].isoformat()}
    counts = [row[2] for row in run_funnel(env, spec)]
    steps = SPECS["canonical"]["steps"]
    reached = ", ".join(f"count({s['event']}_at)" for s in steps)
    sql = f"select {reached} from analytics.fact_funnels where page_view_at is not null"  # noqa: S608
    expected = rawdata.query(env, sql)[0]
    assert counts == list(expected)
    summed = ", ".join(f"sum({s['event']}_sessions)::bigint" for s in steps)
    daily = rawdata.query(env, f"select {summed} from analytics.agg_funnel_daily")[0]  # noqa: S608
    assert counts == list(daily)


BAD_SPECS = [
    ({"from": "2026-03-02", "to": "2026-03-03"}, "no steps"),
    ({"steps": [], "from": "2026-03-02", "to": "2026-03-03"}, "no steps"),
    (
        {"steps": [{"event": "page_view", "colour": "red"}], "from": "2026-03-02", "to": "2026-03-03"},
        'unknown step filter "colour"',
    ),
    (
        {"steps": [{"event": "page_view"}], "from": "2026-03-02", "to": "2026-03-03", "window": "banana"},
        'window "banana" is not an interval',
    ),
    ({"steps": [{"event": "page_view"}], "from": "2026-03-04", "to": "2026-03-03"}, "from is after to"),
    (
        {"steps": [{"event": "page_view"}], "from": "yesterday'; drop table x;--", "to": "2026-03-03"},
        "is not a date",
    ),
    ({"steps": [{"event": "page_view"}] * 11, "from": "2026-03-02", "to": "2026-03-03"}, "at most 10 steps"),
    ({"steps": [{}], "from": "2026-03-02", "to": "2026-03-03"}, "step 1 has no event"),
    (
        {"steps": [{"event": "page_view", "price_min": "cheap"}], "from": "2026-03-02", "to": "2026-03-03"},
        'price_min "cheap" is not a number',
    ),
    (
        {"steps": [{"event": "page_view"}], "from": "2026-03-02", "to": "2026-03-03", "count": "people"},
        'count "people"',
    ),
    (
        {"steps": [{"event": "page_view"}], "from": "2026-03-02", "to": "2026-03-03", "breakdown": "colour"},
        'breakdown "colour"',
    ),
    (
        {"steps": [{"event": "page_view"}], "from": "2026-03-02", "to": "2026-03-03", "device": [1]},
        "device is a list of texts",
    ),
    (
        {"steps": [{"event": "page_view"}], "from": "2026-03-02", "to": "2026-03-03", "colour": 1},
        'unknown funnel key "colour"',
    ),
    ([1, 2], "a funnel spec is a JSON object"),
]


@pytest.mark.parametrize(("spec", "message"), BAD_SPECS, ids=[m for _, m in BAD_SPECS])
def test_a_bad_spec_gets_an_error_naming_what_is_wrong(generated, spec, message):
    env, _, _ = generated
    with pytest.raises(psycopg2.errors.InvalidParameterValue, match=message):
        rawdata.query(env, FUNNEL, (json.dumps(spec),))


def test_values_are_bound_never_spliced(generated):
    env, _, _ = generated
    spec = {
        "steps": [{"event": "page_view' or '1'='1", "brand": "x'); drop table analytics.fact_events; --"}],
        "from": "2026-03-02",
        "to": "2026-03-03",
    }
    assert [row[2] for row in run_funnel(env, spec)] == [0]
    assert rawdata.query(env, "select count(*) > 0 from analytics.fact_events")[0][0]
