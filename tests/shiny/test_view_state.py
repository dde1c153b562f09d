"""Every view is a URL: the query string's parser (`shiny/viewstate.py`) holds up against any
text (Hypothesis), a view written into a URL reads back the same, and the hostile cases it found
or that we thought of stay pinned as plain examples."""

from __future__ import annotations

from datetime import date
from urllib.parse import urlencode

import funnel_spec as fs
import known_events as k
import pytest
import queries
import viewstate as vs
from app import PAGE_PARAMS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from playwright.sync_api import expect
from queries import behaviour as q
from shiny.playwright import controller
from test_app_browser import (
    assert_table_equals,
    counts_equal,
    figure_data,
    first_column_equal,
    no_output_errors,
    open_app,
    table_rows,
    wait_idle,
    wait_sql,
)

C = {
    "min_date": date(2026, 3, 2),
    "max_date": date(2026, 3, 4),
    "start": date(2026, 3, 2),
    "kinds": {
        "event_name": ["add_to_cart", "checkout_start", "page_view", "product_view", "purchase", "search"],
        "device_type": ["desktop", "mobile", "tablet"],
        "traffic_source": ["facebook", "google", "newsletter"],
        "product_category": ["bags", "electronics.smartphone", "shoes"],
        "product_brand": ["acme", "globex", "Initech"],
    },
    "price_min": 12,
    "price_max": 200,
}
KEYS = sorted({key for params in PAGE_PARAMS.values() for p in params for key in p.keys} | {"page"})
DEFAULT_DATES = (C["start"], C["max_date"])


def assert_valid(view: vs.View) -> None:
    """Every value of every page is one its input accepts."""
    assert view.page in vs.PAGES
    for page, state in view.states.items():
        assert set(state) == set(PAGE_PARAMS[page])
        for param, value in state.items():
            if isinstance(param, vs.Dates):
                start, end = value
                assert isinstance(start, date) and isinstance(end, date) and start <= end
            elif isinstance(param, vs.PriceRange):
                lo, hi = value
                assert C["price_min"] <= lo <= hi <= C["price_max"]
                assert isinstance(lo, int) and isinstance(hi, int)
            elif isinstance(param, vs.Known):
                assert isinstance(value, tuple)
                assert set(value) <= set(C["kinds"][param.kind])
                assert len(set(value)) == len(value)
            elif isinstance(param, vs.Choice):
                assert value in param.allowed(C)
            elif isinstance(param, fs.BuilderParam):
                assert_valid_builder(value)
            else:  # pragma: no cover - a new kind of parameter needs its check here
                raise AssertionError(param)
        # a valid view writes a URL that reads back the same
        if page == view.page:
            again = vs.parse_view(vs.encode_view(page, state, C), C, PAGE_PARAMS)
            assert again.page == page and again.states[page] == state


def assert_valid_builder(b: fs.Builder) -> None:
    known = fs.Known.of(C)
    assert isinstance(b, fs.Builder) and len(b.steps) <= fs.MAX_STEPS
    for step in b.steps:
        assert step.event in C["kinds"]["event_name"]
        assert step.category is None or step.category in known.categories
        assert step.brand is None or step.brand in C["kinds"]["product_brand"]
        for key, limit in fs.TEXT_LIMITS.items():
            text = getattr(step, key)
            assert text is None or (0 < len(text) <= limit and vs.clean_text(text, limit) == text)
        for price in (step.price_min, step.price_max):
            assert price is None or 0 <= price <= fs.PRICE_LIMIT
        if step.price_min is not None and step.price_max is not None:
            assert step.price_min <= step.price_max
    assert b.window == fs.DEFAULT_WINDOW or fs.WINDOW_TEXT.fullmatch(b.window)
    assert b.count in fs.COUNTS and b.order in fs.ORDERS and b.breakdown in fs.BREAKDOWNS


# --- properties --------------------------------------------------------------------------------


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_any_text_parses_to_a_valid_view(text):
    assert_valid(vs.parse_view(text, C, PAGE_PARAMS))


any_value = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["2026-03-03", "2026-02-30", "0001-01-01", "9999-12-31", "nan", "inf", "-1", "1e309", "50", "", " "]
    ),
    st.sampled_from([v for values in C["kinds"].values() for v in values]),
    st.sampled_from(["overview", "funnel", "products", "activity", "behaviour", "hour", "week", "log"]),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.one_of(st.sampled_from(KEYS), st.text(max_size=10)), any_value), max_size=25))
def test_any_values_of_the_known_keys_parse_to_a_valid_view(pairs):
    assert_valid(vs.parse_view(urlencode(pairs), C, PAGE_PARAMS))


def cleaned_texts(limit: int):
    return st.text(max_size=limit).map(lambda t: vs.clean_text(t, limit) or None)


@st.composite
def steps(draw):
    known = fs.Known.of(C)
    prices = [draw(st.one_of(st.none(), st.integers(0, 10**8).map(lambda n: n / 100))) for _ in range(2)]
    if None not in prices:
        prices.sort()
    return fs.Step(
        event=draw(st.sampled_from(C["kinds"]["event_name"])),
        category=draw(st.one_of(st.none(), st.sampled_from(sorted(known.categories)))),
        brand=draw(st.one_of(st.none(), st.sampled_from(C["kinds"]["product_brand"]))),
        product_id=draw(cleaned_texts(fs.TEXT_LIMITS["product_id"])),
        price_min=prices[0],
        price_max=prices[1],
        page_path=draw(cleaned_texts(fs.TEXT_LIMITS["page_path"])),
        search=draw(cleaned_texts(fs.TEXT_LIMITS["search"])),
    )


@st.composite
def builders(draw):
    return fs.Builder(
        steps=tuple(draw(st.lists(steps(), max_size=fs.MAX_STEPS))),
        window=draw(st.sampled_from([*fs.WINDOW_PRESETS, "90 minutes", "1 day 12:00", "2 weeks"])),
        count=draw(st.sampled_from(list(fs.COUNTS))),
        order=draw(st.sampled_from(list(fs.ORDERS))),
        breakdown=draw(st.sampled_from(list(fs.BREAKDOWNS))),
    )


@st.composite
def valid_states(draw):
    page = draw(st.sampled_from(list(PAGE_PARAMS)))
    state = {}
    for param in PAGE_PARAMS[page]:
        if isinstance(param, vs.Dates):
            a = draw(st.dates(min_value=date(1970, 1, 1), max_value=date(2999, 12, 31)))
            b = draw(st.dates(min_value=date(1970, 1, 1), max_value=date(2999, 12, 31)))
            state[param] = (min(a, b), max(a, b))
        elif isinstance(param, vs.PriceRange):
            a, b = draw(st.integers(12, 200)), draw(st.integers(12, 200))
            state[param] = (min(a, b), max(a, b))
        elif isinstance(param, vs.Known):
            state[param] = tuple(draw(st.lists(st.sampled_from(C["kinds"][param.kind]), unique=True)))
        elif isinstance(param, fs.BuilderParam):
            state[param] = draw(builders())
        else:
            state[param] = draw(st.sampled_from(sorted(param.allowed(C))))
    return page, state


def _same_selection(a, b) -> bool:
    if isinstance(b, fs.Builder) and not b.steps:  # without steps, the builder's options are not kept
        return a == fs.Builder()
    return a == b or (isinstance(a, tuple) and set(a) == set(b))


@settings(max_examples=300)
@given(valid_states())
def test_a_view_written_into_a_url_reads_back_the_same(drawn):
    page, state = drawn
    view = vs.parse_view(vs.encode_view(page, state, C), C, PAGE_PARAMS)
    assert view.page == page
    for param, value in state.items():  # a multi-select equal to its default may come back reordered
        assert _same_selection(view.states[page][param], value), param.keys


# --- examples ------------------------------------------------------------------------------------


def state_of(query: str, page: str | None = None) -> dict[str, object]:
    """The view of a query string, as {URL key(s): value} for the page it names (or `page`)."""
    view = vs.parse_view(query, C, PAGE_PARAMS)
    return {",".join(p.keys): v for p, v in view.states[page or view.page].items()}


def test_no_query_is_the_overview_with_its_defaults():
    view = vs.parse_view("", C, PAGE_PARAMS)
    assert view.page == "overview"
    assert state_of("") == {
        "from,to": DEFAULT_DATES,
        "device": (),
        "source": (),
        "events": ("page_view", "product_view", "add_to_cart", "purchase"),
        "grain": "auto",
        "scale": "linear",
    }


def test_a_full_view_is_read_as_written():
    query = (
        "page=activity&from=2026-03-03&to=2026-03-04&device=mobile&device=tablet&source=google"
        "&tz=Asia%2FKolkata&events=purchase&breakdown=traffic_source&scale=log"
    )
    assert state_of(query) == {
        "from,to": (date(2026, 3, 3), date(2026, 3, 4)),
        "device": ("mobile", "tablet"),
        "source": ("google",),
        "tz": "Asia/Kolkata",
        "events": ("purchase",),
        "breakdown": "traffic_source",
        "scale": "log",
    }


def test_shared_filters_apply_to_every_page_own_ones_only_to_the_page_in_view():
    query = "page=funnel&from=2026-03-03&to=2026-03-03&device=mobile&breakdown=week&grain=day"
    assert state_of(query, "overview")["from,to"] == (date(2026, 3, 3), date(2026, 3, 3))
    assert state_of(query, "overview")["device"] == ("mobile",)
    assert state_of(query, "overview")["grain"] == "auto"  # Overview's own: not in view
    assert state_of(query, "activity")["breakdown"] == "device_type"
    assert state_of(query)["breakdown"] == "week"
    assert state_of(query, "products")["from,to"] == (date(2026, 3, 3), date(2026, 3, 3))


@pytest.mark.parametrize(
    ("query", "dates"),
    [
        ("from=2026-03-03&to=2026-03-01", DEFAULT_DATES),  # ends before it starts
        ("from=2026-02-30&to=2026-03-03", (C["start"], date(2026, 3, 3))),  # no such day: default start
        ("from=2026-03-03", (date(2026, 3, 3), C["max_date"])),
        ("from=2026-3-3&to=20260304", DEFAULT_DATES),
        ("from=0001-01-01&to=0001-01-02", DEFAULT_DATES),  # before 1970: a previous period would underflow
        ("from=9999-12-30&to=9999-12-31", DEFAULT_DATES),
        ("from=2026-03-03'; drop table analytics.fact_events; --", DEFAULT_DATES),
        ("from=%F0%9F%98%80&to=", DEFAULT_DATES),
        ("from=2026-03-03&from=2026-03-04&to=2026-03-04", (date(2026, 3, 3), date(2026, 3, 4))),  # the first
    ],
)
def test_bad_dates_give_the_default_dates(query, dates):
    assert state_of(query)["from,to"] == dates


@pytest.mark.parametrize(
    "query",
    [
        "page=../../etc/passwd",
        "page=Funnel",
        "page=",
        "page",
        "%ZZ%00=%00&&&==&page=overview%00",
        "page=overview&grain=minute&scale=%3Cscript%3E",
        "a" * 20_000,
        "&".join(f"k{i}=v" for i in range(5000)),
    ],
)
def test_hostile_queries_give_the_overview_with_defaults(query):
    view = vs.parse_view(query, C, PAGE_PARAMS)
    assert_valid(view)
    assert view.page == "overview"
    state = state_of(query)
    assert state["grain"] == "auto" and state["scale"] == "linear" and state["from,to"] == DEFAULT_DATES


def test_multi_selects_keep_their_known_values_and_drop_the_rest():
    query = "device=mobile&device=mobile' or '1'='1&device=watch&device=tablet&device=mobile"
    assert state_of(query)["device"] == ("mobile", "tablet")
    assert state_of("device=watch")["device"] == ()  # only unknown values: the default ("all")
    assert state_of("events=banana")["events"] == ("page_view", "product_view", "add_to_cart", "purchase")
    assert state_of("events=")["events"] == ()  # none chosen, written as an empty key
    assert state_of("page=products&brand=initech")["brand"] == ()  # values are matched exactly
    assert state_of("page=products&category=electronics.smartphone")["category"] == (
        "electronics.smartphone",
    )


@pytest.mark.parametrize(
    ("query", "prices"),
    [
        ("price_min=50&price_max=90", (50, 90)),
        ("price_min=50.4&price_max=89.6", (50, 90)),
        ("price_min=nan&price_max=inf", (12, 200)),
        ("price_min=1e309&price_max=-1e309", (12, 200)),
        ("price_min=5&price_max=900", (12, 200)),  # outside the catalogue's bounds: the bound
        ("price_min=90&price_max=50", (12, 200)),
        ("price_min=0x10&price_max=1_0_0", (12, 100)),  # Python reads 1_0_0; 0x10 is not a number
        ("price_min=" + "9" * 100, (12, 200)),
    ],
)
def test_price_range_within_the_catalogue(query, prices):
    assert state_of("page=products&" + query)["price_min,price_max"] == prices


def test_the_url_names_only_what_is_not_a_default_but_always_the_dates():
    view = vs.parse_view("page=overview", C, PAGE_PARAMS)
    assert (
        vs.encode_view("overview", view.states["overview"], C)
        == "page=overview&from=2026-03-02&to=2026-03-04"
    )
    state = dict(view.states["overview"])
    events = next(p for p in state if p.keys == ("events",))
    state[events] = ()
    assert vs.encode_view("overview", state, C).endswith("&events=")


@pytest.mark.parametrize(
    ("text", "cleaned"),
    [("  a\x00b\u0007c  ", "abc"), ("\ud800x", "x"), ("ok", "ok"), ("x" * 300, "x" * 200), ("é 🛒", "é 🛒")],
)
def test_clean_text(text, cleaned):
    assert vs.clean_text(text) == cleaned


# --- in the browser: a view's URL reopens the same view, with the same numbers -----------------

D1, D2 = date(2026, 3, 3), date(2026, 3, 4)


def _open(page, url: str, widget: str, *fragments: str) -> None:
    """Open a URL and wait for the widget's query (with these parameter values) to have run."""

    page.goto(url)
    wait_idle(page)
    wait_sql(page, widget, "analytics.", *fragments)


def _fresh_page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(20_000)
    return context, page


def _url_settles(page, *parts: str) -> str:
    """The URL once the server has written these parts into it."""
    page.wait_for_function("parts => parts.every(p => window.location.search.includes(p))", arg=list(parts))
    return page.url


def _set_dates(page, input_id: str, start: date, end: date) -> None:

    controller.InputDateRange(page, input_id).set((start.isoformat(), end.isoformat()))


def _overview_view(page, reader) -> list[tuple[str, object]]:
    """What the Overview shows for the filters set below: the funnel and the top products."""

    wait_sql(page, "overview-funnel", "ARRAY['mobile']", "ARRAY['google']", f"'{D1}'::date")
    counts_equal(page, "overview-funnel", k.expected_funnel(["mobile"], ["google"], D1, D2))
    wait_sql(page, "overview-products", "ARRAY['mobile']", f"'{D1}'::date")
    df = queries.product_performance(reader, D1, D2, "purchases", ["mobile"], ["google"], limit=20).df
    assert_table_equals(page, "overview-products", df, ["product_id", "views", "add_to_carts", "purchases"])
    wait_sql(
        page, "overview-daily", "ARRAY['page_view','purchase']", "h.event_date::timestamp as period_start"
    )
    names = sorted(t["name"] for t in figure_data(page, "overview-daily"))
    return [
        ("funnel", table_rows(page, "overview-funnel")),
        ("products", table_rows(page, "overview-products")),
        ("series", names),
    ]


@pytest.mark.browser
def test_overview_view_reopens_from_its_url(page, browser, app_url, reader):

    open_app(page, app_url)
    _set_dates(page, "overview-filters-dates", D1, D2)
    controller.InputSelectize(page, "overview-filters-devices").set(["mobile"])
    controller.InputSelectize(page, "overview-filters-sources").set(["google"])
    controller.InputSelectize(page, "overview-filters-events").set(["page_view", "purchase"])
    controller.InputRadioButtons(page, "overview-grain").set("day")
    controller.InputRadioButtons(page, "overview-scale").set("log")
    shown = _overview_view(page, reader)
    url = _url_settles(
        page,
        "from=2026-03-03",
        "to=2026-03-04",
        "device=mobile",
        "source=google",
        "grain=day",
        "scale=log",
        "events=page_view&events=purchase",
    )
    assert "page=overview" in url

    context, again = _fresh_page(browser)
    try:
        _open(again, url, "overview-funnel", "ARRAY['mobile']")
        controller.InputDateRange(again, "overview-filters-dates").expect_value(
            (D1.isoformat(), D2.isoformat())
        )
        controller.InputSelectize(again, "overview-filters-devices").expect_selected(["mobile"])
        controller.InputSelectize(again, "overview-filters-sources").expect_selected(["google"])
        controller.InputSelectize(again, "overview-filters-events").expect_selected(["page_view", "purchase"])
        controller.InputRadioButtons(again, "overview-grain").expect_selected("day")
        controller.InputRadioButtons(again, "overview-scale").expect_selected("log")
        assert _overview_view(again, reader) == shown
        assert again.url == url  # the server writes back the URL it was opened with
        no_output_errors(again)
    finally:
        context.close()


@pytest.mark.browser
def test_funnel_view_reopens_from_its_url(page, browser, app_url, reader):

    def numbers(p) -> None:
        wait_sql(p, "funnel-steps", "ARRAY['desktop']", "ARRAY['google','newsletter']", f"'{D1}'::date")
        counts_equal(p, "funnel-steps", k.expected_funnel(["desktop"], ["google", "newsletter"], D1, D2))
        wait_sql(
            p, "funnel-breakdown_card", "traffic_source as breakdown", "ARRAY['desktop']", f"'{D1}'::date"
        )
        df = queries.funnel_breakdown(
            reader, D1, D2, "traffic_source", ["desktop"], ["google", "newsletter"]
        ).df
        assert_table_equals(p, "funnel-breakdown_card", df)

    open_app(page, app_url)
    controller.NavsetBar(page, "page").set("funnel")
    _set_dates(page, "funnel-filters-dates", D1, D2)
    controller.InputSelectize(page, "funnel-filters-devices").set(["desktop"])
    controller.InputSelectize(page, "funnel-filters-sources").set(["google", "newsletter"])
    controller.InputRadioButtons(page, "funnel-breakdown").set("traffic_source")
    numbers(page)
    url = _url_settles(
        page,
        "page=funnel",
        "from=2026-03-03",
        "device=desktop",
        "source=google&source=newsletter",
        "breakdown=traffic_source",
    )

    context, again = _fresh_page(browser)
    try:
        _open(again, url, "funnel-steps", "ARRAY['desktop']")
        controller.NavsetBar(again, "page").expect_value("funnel")
        controller.InputDateRange(again, "funnel-filters-dates").expect_value(
            (D1.isoformat(), D2.isoformat())
        )
        controller.InputSelectize(again, "funnel-filters-devices").expect_selected(["desktop"])
        controller.InputSelectize(again, "funnel-filters-sources").expect_selected(["google", "newsletter"])
        controller.InputRadioButtons(again, "funnel-breakdown").expect_selected("traffic_source")
        numbers(again)
        no_output_errors(again)
    finally:
        context.close()


@pytest.mark.browser
def test_products_view_reopens_from_its_url(page, browser, app_url, reader):

    def numbers(p) -> None:
        wait_sql(p, "products-performance", "measured.revenue desc", "ARRAY['acme']", "p.product_price >= 50")
        df = queries.product_performance(
            reader,
            D1,
            D2,
            "revenue",
            categories=["shoes", "bags"],
            brands=["acme"],
            price_min=50,
            price_max=200,
        ).df
        first_column_equal(p, "products-performance", list(df["product_id"]))

    open_app(page, app_url)
    controller.NavsetBar(page, "page").set("products")
    _set_dates(page, "products-filters-dates", D1, D2)
    controller.InputSelectize(page, "products-filters-categories").set(["shoes", "bags"])
    controller.InputSelectize(page, "products-filters-brands").set(["acme"])
    controller.InputSelect(page, "products-rank").set("revenue")
    page.evaluate("Shiny.setInputValue('products-filters-price', [50, 200])")
    numbers(page)
    url = _url_settles(
        page, "page=products", "category=shoes&category=bags", "brand=acme", "price_min=50", "rank=revenue"
    )

    context, again = _fresh_page(browser)
    try:
        _open(again, url, "products-performance", "ARRAY['acme']")
        # a page built from its URL shows a selection in the order of the choices
        controller.InputSelectize(again, "products-filters-categories").expect_selected(["bags", "shoes"])
        controller.InputSelect(again, "products-rank").expect_selected("revenue")
        controller.InputSliderRange(again, "products-filters-price").expect_value(("50", "200"))
        numbers(again)
        no_output_errors(again)
    finally:
        context.close()


@pytest.mark.browser
def test_activity_view_reopens_from_its_url(page, browser, app_url, reader):

    def numbers(p) -> None:
        wait_sql(
            p,
            "activity-breakdown_card",
            "'Asia/Kolkata'",
            "h.traffic_source as breakdown",
            "ARRAY['purchase']",
            "ARRAY['desktop','tablet']",
        )
        df = queries.activity_breakdown(
            reader, D1, D2, "traffic_source", "Asia/Kolkata", ["purchase"], ["desktop", "tablet"]
        ).df
        assert_table_equals(p, "activity-breakdown_card", df)

    open_app(page, app_url)
    controller.NavsetBar(page, "page").set("activity")
    _set_dates(page, "activity-filters-dates", D1, D2)
    controller.InputSelect(page, "activity-tz").set("Asia/Kolkata")
    controller.InputSelectize(page, "activity-filters-events").set(["purchase"])
    controller.InputSelectize(page, "activity-filters-devices").set(["desktop", "tablet"])
    controller.InputRadioButtons(page, "activity-breakdown").set("traffic_source")
    controller.InputRadioButtons(page, "activity-scale").set("normalised")
    numbers(page)
    url = _url_settles(
        page,
        "page=activity",
        "tz=Asia%2FKolkata",
        "events=purchase",
        "breakdown=traffic_source",
        "scale=normalised",
    )

    context, again = _fresh_page(browser)
    try:
        _open(again, url, "activity-breakdown_card", "'Asia/Kolkata'")
        controller.InputSelect(again, "activity-tz").expect_selected("Asia/Kolkata")
        controller.InputRadioButtons(again, "activity-scale").expect_selected("normalised")
        controller.InputSelectize(again, "activity-filters-devices").expect_selected(["desktop", "tablet"])
        numbers(again)
        no_output_errors(again)
    finally:
        context.close()


@pytest.mark.browser
def test_behaviour_view_reopens_from_its_url(page, browser, app_url, reader):

    def numbers(p) -> None:
        wait_sql(p, "behaviour-paths", "ARRAY['mobile']", f"'{D1}'::date")
        assert_table_equals(p, "behaviour-paths", q.top_paths(reader, D1, D2, ["mobile"]).df)
        wait_sql(p, "behaviour-flows", "'home'::text", "ARRAY['mobile']")
        wait_sql(p, "behaviour-retention", "'purchasers'", "ARRAY['mobile']")

    open_app(page, app_url)
    controller.NavsetBar(page, "page").set("behaviour")
    _set_dates(page, "behaviour-filters-dates", D1, D2)
    controller.InputSelectize(page, "behaviour-filters-devices").set(["mobile"])
    controller.InputSelect(page, "behaviour-first_step").set("home")
    controller.InputRadioButtons(page, "behaviour-cohorts").set("purchasers")
    numbers(page)
    url = _url_settles(page, "page=behaviour", "device=mobile", "first_step=home", "cohorts=purchasers")

    context, again = _fresh_page(browser)
    try:
        _open(again, url, "behaviour-paths", "ARRAY['mobile']")
        controller.InputSelect(again, "behaviour-first_step").expect_selected("home")
        controller.InputRadioButtons(again, "behaviour-cohorts").expect_selected("purchasers")
        numbers(again)
        no_output_errors(again)
    finally:
        context.close()


@pytest.mark.browser
def test_dates_and_segment_carry_across_pages(page, app_url):

    open_app(page, app_url)
    _set_dates(page, "overview-filters-dates", D1, D2)
    controller.InputSelectize(page, "overview-filters-devices").set(["mobile", "tablet"])
    controller.InputSelectize(page, "overview-filters-sources").set(["google"])
    wait_sql(page, "overview-funnel", "ARRAY['mobile','tablet']", "ARRAY['google']", f"'{D1}'::date")

    nav = controller.NavsetBar(page, "page")
    nav.set("funnel")
    controller.InputDateRange(page, "funnel-filters-dates").expect_value((D1.isoformat(), D2.isoformat()))
    controller.InputSelectize(page, "funnel-filters-devices").expect_selected(["mobile", "tablet"])
    controller.InputSelectize(page, "funnel-filters-sources").expect_selected(["google"])
    wait_sql(page, "funnel-steps", "ARRAY['mobile','tablet']", "ARRAY['google']", f"'{D1}'::date")
    counts_equal(page, "funnel-steps", k.expected_funnel(["mobile", "tablet"], ["google"], D1, D2))
    _url_settles(page, "page=funnel", "from=2026-03-03", "device=mobile&device=tablet", "source=google")

    nav.set("products")  # no device or source filter there: the dates only
    controller.InputDateRange(page, "products-filters-dates").expect_value((D1.isoformat(), D2.isoformat()))
    _url_settles(page, "page=products", "from=2026-03-03")
    assert "device=" not in page.url

    # a change on another page comes back to the Overview
    nav.set("activity")
    _set_dates(page, "activity-filters-dates", D2, D2)
    controller.InputSelectize(page, "activity-filters-devices").set(["tablet"])
    wait_sql(page, "activity-heatmap", "ARRAY['tablet']", f"'{D2}'::date")
    nav.set("overview")
    controller.InputDateRange(page, "overview-filters-dates").expect_value((D2.isoformat(), D2.isoformat()))
    controller.InputSelectize(page, "overview-filters-devices").expect_selected(["tablet"])
    wait_sql(page, "overview-funnel", "ARRAY['tablet']", f"'{D2}'::date and '{D2}'::date")
    counts_equal(page, "overview-funnel", k.expected_funnel(["tablet"], ["google"], D2, D2))
    no_output_errors(page)


@pytest.mark.browser
def test_a_hostile_url_opens_a_working_page_with_defaults(page, app_url):

    hostile = (
        "?page=funnel%00&from=2026-02-30&to=1e309&device=mobile'%20or%20'1'='1&source=%ZZ"
        "&grain=%3Cscript%3Ealert(1)%3C/script%3E&events=banana&scale=&" + "x=1&" * 300
    )
    _open(page, app_url + hostile, "overview-funnel")
    controller.NavsetBar(page, "page").expect_value("overview")
    controller.InputDateRange(page, "overview-filters-dates").expect_value(
        (k.FIRST_DATE.isoformat(), k.LAST_DATE.isoformat())
    )
    controller.InputSelectize(page, "overview-filters-devices").expect_selected([])
    controller.InputRadioButtons(page, "overview-grain").expect_selected("auto")
    counts_equal(page, "overview-funnel", k.expected_funnel())
    expect(page.locator("script:has-text('alert(1)')")).to_have_count(0)
    url = _url_settles(page, "page=overview", f"from={k.FIRST_DATE}")
    assert url.endswith(f"?page=overview&from={k.FIRST_DATE}&to={k.LAST_DATE}")  # the junk is gone
    no_output_errors(page)


@pytest.mark.browser
def test_back_button_goes_back_to_the_previous_page(page, app_url):

    open_app(page, app_url)
    _set_dates(page, "overview-filters-dates", D1, D2)
    _url_settles(page, "page=overview", "from=2026-03-03")
    controller.NavsetBar(page, "page").set("funnel")
    wait_sql(page, "funnel-steps", f"'{D1}'::date")
    _url_settles(page, "page=funnel")
    page.go_back()
    _url_settles(page, "page=overview", "from=2026-03-03")
    wait_sql(page, "overview-funnel", f"'{D1}'::date")
    controller.NavsetBar(page, "page").expect_value("overview")


@pytest.mark.browser
def test_a_url_opened_while_the_database_is_down_shows_its_view_once_it_is_back(page, known_db, start_server):
    """The page was built without choices (so without the URL's devices or builder steps): when the
    database answers, the filter bars take the URL's view, and the URL is kept meanwhile."""
    from test_app_browser import TcpProxy

    proxy = TcpProxy(int(known_db["PGPORT"]))  # not started: the database is unreachable
    try:
        server = start_server(dict(known_db, PGPORT=str(proxy.port)))
        query = "?page=funnel&from=2026-03-03&to=2026-03-04&device=mobile&source=google"
        page.goto(server.url + query + "&step1=product_view&step2=add_to_cart")
        expect(page.locator(".db-banner")).to_be_visible(timeout=30_000)
        assert page.url.endswith(query + "&step1=product_view&step2=add_to_cart")
        proxy.start()
        expect(page.locator(".db-banner")).to_have_count(0, timeout=30_000)
        wait_sql(
            page, "funnel-custom", '"event": "add_to_cart"', '"device": ["mobile"]', '"from": "2026-03-03"'
        )
        controller.InputSelectize(page, "funnel-filters-devices").expect_selected(["mobile"])
        _url_settles(
            page, "page=funnel", "from=2026-03-03", "device=mobile", "source=google", "step2=add_to_cart"
        )
        no_output_errors(page)

        page.locator("#funnel-builder-clear").click()  # the standard funnel, with the URL's filters
        wait_sql(page, "funnel-steps", "ARRAY['mobile']", "ARRAY['google']", f"'{D1}'::date")
        counts_equal(page, "funnel-steps", k.expected_funnel(["mobile"], ["google"], D1, D2))
    finally:
        proxy.stop()
