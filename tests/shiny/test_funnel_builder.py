"""The Funnel page's builder: the spec it sends to `analytics.funnel`, its numbers on screen
against the function's own rows for the same spec on the known warehouse, adding, removing and
moving steps, saving and reopening funnels, the function's refusals shown as messages, and a
copied URL that reopens the same builder view."""

from __future__ import annotations

import json
from datetime import date

import formatting
import funnel_spec as fs
import known_events as k
import pandas as pd
import pytest
import queries
import viewstate as vs
from playwright.sync_api import Page, expect
from queries import Refused
from shiny.playwright import controller
from test_app_browser import (
    eventually,
    no_output_errors,
    open_app,
    table_header,
    table_rows,
    wait_idle,
    wait_sql,
)

D1, D2 = k.FIRST_DATE, k.LAST_DATE
C = {
    "min_date": D1,
    "max_date": D2,
    "start": D1,
    "kinds": {
        "event_name": ["add_to_cart", "checkout_start", "page_view", "product_view", "purchase", "search"],
        "device_type": ["desktop", "mobile", "tablet"],
        "traffic_source": ["facebook", "google", "newsletter"],
        "product_category": ["bags", "hats", "shoes", "electronics.smartphone"],
        "product_brand": ["acme", "globex", "initech"],
    },
    "price_min": 12,
    "price_max": 200,
}
KNOWN = fs.Known.of(C)


# --- the spec, without a browser ---------------------------------------------------------------


def test_spec_is_the_functions_json():
    builder = fs.Builder(
        steps=(
            fs.Step("product_view", category="shoes", price_min=50.0),
            fs.Step("add_to_cart"),
            fs.Step("purchase"),
        ),
        window="10 minutes",
        count="users",
        order="any",
        breakdown="brand",
    )
    spec = fs.spec(builder, D1, D2, ["mobile"], [])
    assert spec == {
        "steps": [
            {"event": "product_view", "category": "shoes", "price_min": 50},
            {"event": "add_to_cart"},
            {"event": "purchase"},
        ],
        "from": "2026-03-02",
        "to": "2026-03-04",
        "window": "10 minutes",
        "count": "users",
        "order": "any",
        "device": ["mobile"],
        "breakdown": "brand",
    }
    assert fs.spec_json(spec).startswith(
        '{"steps": [{"event": "product_view", "category": "shoes", "price_min": 50}'
    )


def test_builder_in_the_url_reads_back_the_same():
    builder = fs.Builder(
        steps=(
            fs.Step("product_view", category="electronics", brand="acme", price_min=10.5, price_max=99.0),
            fs.Step("search", search="red shoes & bags"),
            fs.Step("page_view", page_path="/product/", product_id="P1"),
        ),
        window="1 day 12:00",
        count="users",
        order="any",
        breakdown="device",
    )
    pairs = fs.to_params(builder)
    assert pairs[:5] == [
        ("step1", "product_view"),
        ("step1_category", "electronics"),
        ("step1_brand", "acme"),
        ("step1_price_min", "10.5"),
        ("step1_price_max", "99"),
    ]
    assert ("by", "device") in pairs
    query = vs.parse_query(vs.urlencode(pairs))
    assert fs.from_params(query, KNOWN) == builder
    assert fs.to_params(fs.Builder(steps=(fs.Step("purchase"),))) == [
        ("step1", "purchase")
    ]  # defaults unwritten


@pytest.mark.parametrize(
    ("query", "steps", "options"),
    [
        (
            "step1=product_view&step2=teleport&step3=purchase",
            ["product_view", "purchase"],
            {},
        ),  # unknown event
        ("step2=add_to_cart&step5=purchase", ["add_to_cart", "purchase"], {}),  # gaps close up
        ("step11=purchase&step0=purchase&step=purchase", [], {}),  # at most 10 steps, numbered from 1
        ("step1=purchase&window=banana&count=visits&order=random&by=colour", ["purchase"], {}),
        ("step1=purchase&window=0.5%20hours", ["purchase"], {"window": "0.5 hours"}),
        ("step1=purchase&window=1;drop%20table%20x", ["purchase"], {}),
        ("step1=purchase&window=" + "9" * 30 + "%20days", ["purchase"], {}),
        ("step1=PURCHASE", [], {}),
    ],
)
def test_hostile_builder_urls_drop_what_is_not_valid(query, steps, options):
    builder = fs.from_params(vs.parse_query(query), KNOWN)
    assert [s.event for s in builder.steps] == steps
    defaults = {"window": fs.DEFAULT_WINDOW, "count": "sessions", "order": "ordered", "breakdown": ""}
    for key, value in {**defaults, **options}.items():
        assert getattr(builder, key) == value


@pytest.mark.parametrize(
    ("filters", "kept"),
    [
        ({"category": "electronics"}, {"category": "electronics"}),  # a parent category
        ({"category": "electro"}, {}),  # not whole segments
        ({"brand": "ACME"}, {"brand": "acme"}),  # case-insensitive, spelled as the catalogue
        ({"brand": "acme' or '1'='1"}, {}),
        ({"price_min": "90", "price_max": "50"}, {}),  # min above max: neither
        ({"price_min": "nan", "price_max": "1e400"}, {}),
        ({"price_min": "-5"}, {}),
        (
            {"product_id": "P1\x00\x07", "search": "  shoes\u200b  "},
            {"product_id": "P1", "search": "shoes\u200b"},
        ),
        ({"page_path": "/" + "p" * 300}, {"page_path": "/" + "p" * 199}),
    ],
)
def test_step_filters_from_outside_are_checked(filters, kept):
    step = fs.checked_step({"event": "product_view", **filters}, KNOWN)
    got = step.filters()
    if "price_min" in got:
        got["price_min"] = str(int(got["price_min"]))
    assert got == kept


@pytest.mark.parametrize(
    "raw",
    [
        None,
        [],
        "x",
        {"steps": "x"},
        {"steps": [None, 1, "a", {"event": 5}]},
        {"steps": [{"event": "purchase"}] * 30},
    ],
)
def test_a_saved_spec_of_any_shape_opens_without_error(raw):
    builder, dates, devices, sources = fs.checked_spec(raw, KNOWN, C)
    assert len(builder.steps) <= fs.MAX_STEPS
    assert dates == (D1, D2) and devices == () and sources == ()


# --- the query, against the function on the known warehouse --------------------------------------


def function_rows(conn, spec: dict) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute("select * from analytics.funnel(%s::jsonb)", (json.dumps(spec),))
        return [tuple(queries._plain(v) for v in row) for row in cur.fetchall()]


def shown_call(spec: dict) -> str:
    """The call *Show SQL* prints for a spec: the spec as a quoted jsonb literal."""
    literal = json.dumps(spec).replace("'", "''")
    return "select * from analytics.funnel('" + literal + "'::jsonb);"  # noqa: S608 - the text expected on screen


SPEC = {
    "steps": [
        {"event": "product_view", "category": "shoes"},
        {"event": "add_to_cart"},
        {"event": "purchase"},
    ],
    "from": "2026-03-02",
    "to": "2026-03-04",
    "window": "10 minutes",
    "count": "sessions",
    "order": "ordered",
}


def test_custom_funnel_is_the_functions_rows_and_shows_the_call(reader, admin):
    r = queries.custom_funnel(reader, SPEC)
    rows = [tuple(None if pd.isna(v) else v for v in row) for row in r.df.itertuples(index=False)]
    assert rows == function_rows(reader, SPEC)
    assert r.sql == shown_call(SPEC)
    with admin.cursor() as cur:  # the shown call, pasted into psql
        cur.execute(r.sql)
        assert [tuple(queries._plain(v) for v in row) for row in cur.fetchall()] == function_rows(
            reader, SPEC
        )


def test_custom_funnel_numbers_worked_out_from_the_sessions(reader):
    """Known sessions walk the shop one event a minute: those that viewed a shoe, then added to
    the cart and bought (the whole chain within 10 minutes)."""
    shoe = {pid for pid, (_, category, _, _) in k.PRODUCTS.items() if category == "shoes"}
    viewed = [s for s in k.SESSIONS if shoe & set(s.views)]
    expected = [
        len(viewed),
        sum(1 for s in viewed if s.cart),
        sum(1 for s in viewed if s.cart and s.purchase),
    ]
    assert list(queries.custom_funnel(reader, SPEC).df["entities"]) == expected


def test_a_quote_in_a_filter_is_a_value(reader):
    spec = dict(
        SPEC, steps=[{"event": "product_view", "brand": "acme'); drop table analytics.fact_events; --"}]
    )
    r = queries.custom_funnel(reader, spec)
    assert list(r.df["entities"]) == [0]
    assert "''); drop table" in r.sql  # quoted inside the jsonb literal


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"window": "banana"}, 'window "banana" is not an interval'),
        ({"steps": []}, "no steps"),
        ({"from": "2026-03-05"}, "from is after to"),
        ({"steps": [{"event": "product_view", "colour": "red"}]}, 'unknown step filter "colour"'),
        (
            {"steps": [{"event": "product_view", "price_min": 90, "price_max": 50}]},
            "price_min is above price_max",
        ),
    ],
)
def test_refused_specs_raise_with_the_functions_message(reader, change, message):
    with pytest.raises(Refused, match=message) as caught:
        queries.custom_funnel(reader, dict(SPEC, **change))
    assert caught.value.sql.startswith("select * from analytics.funnel('")


def test_saving_needs_a_read_write_transaction_and_overwrites_only_when_asked(reader, admin):
    name = "test: saved by the query test"
    try:
        saved = queries.save_funnel(reader, name, SPEC)
        assert list(saved.df["name"]) == [name]
        again = queries.save_funnel(reader, name, dict(SPEC, window="1 hour"))
        assert again.empty  # taken: nothing changed
        with admin.cursor() as cur:
            cur.execute("select spec ->> 'window' from analytics.saved_funnels where name = %s", (name,))
            assert cur.fetchone()[0] == "10 minutes"
        replaced = queries.save_funnel(reader, name, dict(SPEC, window="1 hour"), overwrite=True)
        assert list(replaced.df["name"]) == [name]
        listed = queries.saved_funnels(reader).df
        assert listed.loc[listed["name"] == name, "spec"].iloc[0]["window"] == "1 hour"
        with reader.cursor() as cur:  # the session is read-only again afterwards
            cur.execute("show transaction_read_only")
            assert cur.fetchone()[0] == "on"
    finally:
        with admin.cursor() as cur:
            cur.execute("delete from analytics.saved_funnels where name = %s", (name,))


# --- in the browser --------------------------------------------------------------------------------


def open_funnel(page: Page, url: str) -> None:
    open_app(page, url)
    controller.NavsetBar(page, "page").set("funnel")
    wait_sql(page, "funnel-steps", "agg_funnel_daily")


def step_id(page: Page, number: int, key: str) -> str:
    """The id of step `number`'s input `key` (steps' inputs are named by a stable uid)."""
    selector = f".funnel-step[data-step='{number}'] [id$='_{key}']"
    page.wait_for_selector(selector, state="attached")
    return page.locator(selector).first.get_attribute("id")


def step_events(page: Page) -> list[str]:
    return page.evaluate(
        "() => Array.from(document.querySelectorAll('.funnel-step select[id$=\"_event\"]')).map(s => s.value)"
    )


def add_step(page: Page, event: str) -> None:
    n = page.locator(".funnel-step").count()
    page.locator("#funnel-builder-add").click()
    page.wait_for_selector(f".funnel-step[data-step='{n + 1}']")
    controller.InputSelect(page, step_id(page, n + 1, "event")).set(event)
    wait_idle(page)


def open_filters(page: Page, number: int) -> None:
    details = page.locator(f".funnel-step[data-step='{number}'] details.step-filters")
    if details.get_attribute("open") is None:
        details.locator("summary").click()


def set_window(page: Page, window: str) -> None:
    """Type a window into the selectize (a preset or free text)."""
    box = page.locator("#funnel-builder-window + .selectize-control input")
    box.click()
    box.fill(window)
    box.press("Enter")
    wait_idle(page)


def shown_spec(page: Page, widget: str = "funnel-custom") -> dict:
    text = page.evaluate("id => document.getElementById(id).textContent", f"{widget}-sql")
    assert text.startswith("select * from analytics.funnel('") and text.endswith("'::jsonb);"), text
    return json.loads(
        text.removeprefix("select * from analytics.funnel('").removesuffix("'::jsonb);").replace("''", "'")
    )


def assert_shows_function_rows(page: Page, widget: str, reader, spec: dict) -> None:
    """The widget's table shows the function's rows for this spec, every figure."""
    want = function_rows(reader, spec)

    def check():
        header = table_header(page, widget)
        rows = table_rows(page, widget)
        assert len(rows) == len(want), (rows, want)
        counted = "Users" if spec.get("count") == "users" else "Sessions"
        for shown, (breakdown, step, name, entities, first, previous, median) in zip(rows, want, strict=True):
            cell = dict(zip(header, shown, strict=True))
            assert cell["Step"] == f"{step}. {name}"
            assert cell[counted] == f"{entities:,}"
            assert cell["% of first step"] == ("" if first is None else f"{round(first, 1):.1f}%")
            assert cell["% of previous step"] == ("" if previous is None else f"{round(previous, 1):.1f}%")
            assert cell["Median time from previous step"] == (
                "" if step == 1 else formatting.duration(median)
            )
            if spec.get("breakdown"):
                assert shown[0] == str(breakdown)

    eventually(check)


def wait_spec(page: Page, **parts) -> dict:
    """Wait until the builder's shown spec has these keys (the query re-ran), and return it."""
    fragments = [json.dumps({key: value})[1:-1] for key, value in parts.items()]
    wait_sql(page, "funnel-custom", "analytics.funnel(", *fragments)
    return shown_spec(page)


@pytest.mark.browser
def test_builder_numbers_equal_the_function(page, app_url, reader, admin):
    open_funnel(page, app_url)
    expect(page.locator("#funnel-builder-steps")).to_contain_text("No steps yet")
    add_step(page, "product_view")
    open_filters(page, 1)
    controller.InputSelectize(page, step_id(page, 1, "category")).set("shoes")
    add_step(page, "add_to_cart")
    add_step(page, "purchase")
    set_window(page, "10 minutes")
    spec = wait_spec(page, window="10 minutes", steps=SPEC["steps"])
    assert spec == SPEC
    expect(page.locator("#funnel-kpis")).to_be_hidden()  # the standard funnel gives way
    assert_shows_function_rows(page, "funnel-custom", reader, SPEC)
    previous = dict(SPEC, **{"from": "2026-02-27", "to": "2026-03-01"})
    wait_sql(page, "funnel-custom_previous", '"from": "2026-02-27"')
    expect(page.locator("#funnel-custom_previous-message")).to_have_text(
        "No sessions reached step 1 between 2026-02-27 and 2026-03-01 (does the warehouse hold data that far back?)."
    )
    assert shown_spec(page, "funnel-custom_previous") == previous
    expect(page.locator(".custom-summary")).to_contain_text("2026-02-27 – 2026-03-01")

    # the shown call, pasted into psql, gives the rows on screen
    with admin.cursor() as cur:
        cur.execute(page.evaluate("document.getElementById('funnel-custom-sql').textContent"))
        assert len(cur.fetchall()) == 3

    # users, any order, a device and a breakdown
    controller.InputRadioButtons(page, "funnel-builder-count").set("users")
    controller.InputRadioButtons(page, "funnel-builder-order").set("any")
    controller.InputSelect(page, "funnel-builder-breakdown").set("device")
    controller.InputSelectize(page, "funnel-filters-devices").set(["mobile", "desktop"])
    spec = wait_spec(page, count="users", order="any", breakdown="device", device=["mobile", "desktop"])
    assert_shows_function_rows(page, "funnel-custom", reader, spec)
    header = table_header(page, "funnel-custom")
    assert header == [
        "Device",
        "Step",
        "Users",
        "% of first step",
        "% of previous step",
        "Median time from previous step",
    ]

    # a repeated step, every filter, and the dates of the page
    controller.InputSelect(page, "funnel-builder-breakdown").set("")
    controller.InputDateRange(page, "funnel-filters-dates").set(("2026-03-03", "2026-03-04"))
    controller.InputSelect(page, step_id(page, 2, "event")).set("product_view")
    open_filters(page, 2)
    controller.InputSelectize(page, step_id(page, 2, "brand")).set("acme")
    page.locator(f"#{step_id(page, 2, 'price_min')}").fill("20")
    page.locator(f"#{step_id(page, 2, 'price_max')}").fill("100")
    page.locator(f"#{step_id(page, 2, 'product_id')}").fill("P1")
    page.locator(f"#{step_id(page, 2, 'product_id')}").press("Enter")
    spec = wait_spec(page, **{"from": "2026-03-03"}, price_min=20, price_max=100, product_id="P1")
    assert spec["steps"][1] == {
        "event": "product_view",
        "brand": "acme",
        "product_id": "P1",
        "price_min": 20,
        "price_max": 100,
    }
    assert_shows_function_rows(page, "funnel-custom", reader, spec)
    no_output_errors(page)


@pytest.mark.browser
def test_adding_removing_and_reordering_steps(page, app_url, reader):
    open_funnel(page, app_url)
    for event in ("page_view", "product_view", "add_to_cart"):
        add_step(page, event)
    open_filters(page, 3)
    page.locator(f"#{step_id(page, 3, 'search')}").fill("shoes")  # typed text moves with its step
    page.locator(f"#{step_id(page, 3, 'search')}").press("Enter")
    wait_spec(page, search="shoes")

    page.locator(".funnel-step[data-step='3'] .step-up").click()  # add_to_cart before product_view
    page.wait_for_function(
        "() => document.querySelectorAll('.funnel-step')[1].querySelector('select').value === 'add_to_cart'"
    )
    assert step_events(page) == ["page_view", "add_to_cart", "product_view"]
    spec = wait_spec(
        page,
        steps=[
            {"event": "page_view"},
            {"event": "add_to_cart", "search": "shoes"},
            {"event": "product_view"},
        ],
    )
    assert_shows_function_rows(page, "funnel-custom", reader, spec)

    page.locator(".funnel-step[data-step='1'] .step-remove").click()
    page.wait_for_function("() => document.querySelectorAll('.funnel-step').length === 2")
    assert step_events(page) == ["add_to_cart", "product_view"]
    spec = wait_spec(page, steps=[{"event": "add_to_cart", "search": "shoes"}, {"event": "product_view"}])
    page.locator(".funnel-step[data-step='2'] .step-up").click()
    spec = wait_spec(page, steps=[{"event": "product_view"}, {"event": "add_to_cart", "search": "shoes"}])
    assert_shows_function_rows(page, "funnel-custom", reader, spec)
    assert "step1=product_view&step2=add_to_cart&step2_search=shoes" in page.url

    # at most ten steps
    for _ in range(8):
        page.locator("#funnel-builder-add").click()
    page.wait_for_function("() => document.querySelectorAll('.funnel-step').length === 10")
    page.locator("#funnel-builder-add").click()
    expect(page.locator(".builder-message")).to_have_text("A funnel has at most 10 steps.")
    assert page.locator(".funnel-step").count() == 10

    # no steps: the standard funnel again
    page.locator("#funnel-builder-clear").click()
    expect(page.locator("#funnel-kpis")).to_be_visible()
    expect(page.locator("#funnel-custom-table")).to_be_hidden()
    eventually(lambda: _assert("step1=" not in page.url))
    page.locator("#funnel-builder-standard").click()
    page.wait_for_function("() => document.querySelectorAll('.funnel-step').length === 5")
    assert step_events(page) == ["page_view", "product_view", "add_to_cart", "checkout_start", "purchase"]
    no_output_errors(page)


def _assert(condition: bool) -> None:
    assert condition


@pytest.mark.browser
def test_saving_and_reopening_a_funnel(page, browser, app_url, reader, admin):
    name = "Shoe viewers who buy"
    with admin.cursor() as cur:
        cur.execute("delete from analytics.saved_funnels where name = %s", (name,))
    try:
        open_funnel(page, app_url)
        add_step(page, "product_view")
        open_filters(page, 1)
        controller.InputSelectize(page, step_id(page, 1, "category")).set("shoes")
        add_step(page, "purchase")
        controller.InputSelectize(page, "funnel-filters-sources").set(["google"])
        spec = wait_spec(page, source=["google"])
        page.locator("#funnel-builder-name").fill(name)
        page.locator("#funnel-builder-save").click()
        expect(page.locator(".builder-message")).to_contain_text(f"Saved “{name}”")
        with admin.cursor() as cur:
            cur.execute("select spec, saved_by from analytics.saved_funnels where name = %s", (name,))
            saved_spec, saved_by = cur.fetchone()
        assert saved_spec == spec and saved_by == known_reader(reader)

        # a colleague opens it: the same steps, dates and filters, the same numbers
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        other = context.new_page()
        other.set_default_timeout(20_000)
        try:
            open_funnel(other, app_url)
            controller.InputSelect(other, "funnel-builder-saved").set(name)
            expect(other.locator(".builder-message")).to_contain_text(f"Opened “{name}”")
            assert shown_spec_when(other, spec) == spec
            assert step_events(other) == ["product_view", "purchase"]
            controller.InputSelectize(other, "funnel-filters-sources").expect_selected(["google"])
            assert_shows_function_rows(other, "funnel-custom", reader, spec)
        finally:
            context.close()

        # saving under a taken name asks first; cancelling changes nothing, replacing replaces
        set_window(page, "1 hour")
        wait_spec(page, window="1 hour")
        page.locator("#funnel-builder-save").click()
        dialog = page.locator(".modal-dialog")
        expect(dialog).to_contain_text(f"A funnel named “{name}” is already saved. Replace it with this one?")
        dialog.get_by_role("button", name="Cancel").click()
        expect(dialog).to_have_count(0)
        assert saved_window(admin, name) == fs.DEFAULT_WINDOW
        page.locator("#funnel-builder-save").click()
        page.locator(".modal-dialog").get_by_role("button", name="Replace it").click()
        expect(page.locator(".builder-message")).to_contain_text(f"Saved “{name}”")
        assert saved_window(admin, name) == "1 hour"
        no_output_errors(page)
    finally:
        with admin.cursor() as cur:
            cur.execute("delete from analytics.saved_funnels where name = %s", (name,))


def known_reader(reader) -> str:
    with reader.cursor() as cur:
        cur.execute("select current_user")
        return cur.fetchone()[0]


def saved_window(admin, name: str) -> str:
    with admin.cursor() as cur:
        cur.execute("select spec ->> 'window' from analytics.saved_funnels where name = %s", (name,))
        return cur.fetchone()[0]


def shown_spec_when(page: Page, spec: dict) -> dict:
    page.wait_for_function(
        "text => (document.getElementById('funnel-custom-sql') || {}).textContent === text",
        arg=shown_call(spec),
    )
    wait_idle(page)
    return shown_spec(page)


@pytest.mark.browser
def test_a_copied_builder_url_reopens_the_same_view(page, browser, app_url, reader):
    open_funnel(page, app_url)
    controller.InputDateRange(page, "funnel-filters-dates").set(("2026-03-02", "2026-03-03"))
    add_step(page, "product_view")
    open_filters(page, 1)
    controller.InputSelectize(page, step_id(page, 1, "brand")).set("globex")
    add_step(page, "add_to_cart")
    add_step(page, "checkout_start")
    controller.InputRadioButtons(page, "funnel-builder-order").set("any")
    controller.InputSelect(page, "funnel-builder-breakdown").set("source")
    set_window(page, "30 minutes")
    spec = wait_spec(page, window="30 minutes", order="any", breakdown="source", to="2026-03-03")
    assert_shows_function_rows(page, "funnel-custom", reader, spec)
    shown = table_rows(page, "funnel-custom")
    page.wait_for_function("() => window.location.search.includes('by=source')")
    url = page.url
    assert "step1=product_view&step1_brand=globex&step2=add_to_cart&step3=checkout_start" in url

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    again = context.new_page()
    again.set_default_timeout(20_000)
    try:
        again.goto(url)
        wait_idle(again)
        assert shown_spec_when(again, spec) == spec
        expect(again.locator("#funnel-kpis")).to_be_hidden()
        assert step_events(again) == ["product_view", "add_to_cart", "checkout_start"]
        controller.InputSelectize(again, step_id(again, 1, "brand")).expect_selected(["globex"])
        controller.InputRadioButtons(again, "funnel-builder-order").expect_selected("any")
        controller.InputSelect(again, "funnel-builder-breakdown").expect_selected("source")
        controller.InputDateRange(again, "funnel-filters-dates").expect_value(("2026-03-02", "2026-03-03"))
        eventually(lambda: _assert(table_rows(again, "funnel-custom") == shown))
        no_output_errors(again)
    finally:
        context.close()


@pytest.mark.browser
def test_the_functions_refusal_is_a_message_not_an_error(page, app_url):
    open_funnel(page, app_url)
    add_step(page, "product_view")
    set_window(page, "banana")
    message = page.locator("#funnel-custom-message .widget-error")
    expect(message).to_have_text(
        'The warehouse cannot answer this funnel: window "banana" is not an interval (such as "10 minutes" or "14 days").'
    )
    assert shown_spec(page)["window"] == "banana"  # Show SQL: the call refused
    open_filters(page, 1)
    set_window(page, "1 hour")
    page.locator(f"#{step_id(page, 1, 'price_min')}").fill("90")
    page.locator(f"#{step_id(page, 1, 'price_max')}").fill("50")
    page.locator(f"#{step_id(page, 1, 'price_max')}").press("Enter")
    expect(message).to_have_text(
        "The warehouse cannot answer this funnel: step 1: price_min is above price_max."
    )
    no_output_errors(page)


@pytest.mark.browser
def test_hostile_builder_inputs_from_the_websocket(page, app_url, admin):
    open_funnel(page, app_url)
    add_step(page, "product_view")
    wait_spec(page, steps=[{"event": "product_view"}])
    event = step_id(page, 1, "event")
    page.evaluate('id => Shiny.setInputValue(id, "purchase\'); drop table analytics.fact_events; --")', event)
    page.evaluate(
        "Shiny.setInputValue('funnel-builder-action', {op: 'explode', uid: 'x'}, {priority: 'event'})"
    )
    page.evaluate("Shiny.setInputValue('funnel-builder-count', 'everyone')")
    page.evaluate("Shiny.setInputValue('funnel-builder-order', ['any'])")  # not even a text
    page.evaluate("Shiny.setInputValue('funnel-builder-saved', '<img src=x onerror=alert(1)>')")
    page.evaluate("Shiny.setInputValue('funnel-builder-window', '\\u0000' + 'x'.repeat(5000))")
    wait_idle(page)
    no_output_errors(page)
    with admin.cursor() as cur:
        cur.execute("select count(*) from analytics.fact_events")
        assert cur.fetchone()[0] > 0
    expect(page.locator(".funnel-step")).to_have_count(1)
    expect(page.locator(".builder-message")).to_have_text(
        "No saved funnel is named “<img src=x onerror=alert(1)>”."
    )


def test_dates_in_the_spec_are_iso(reader):
    """The spec's dates are the page's, as text (the function reads YYYY-MM-DD)."""
    spec = fs.spec(fs.Builder(steps=(fs.Step("purchase"),)), date(2026, 3, 2), date(2026, 3, 4))
    assert (spec["from"], spec["to"]) == ("2026-03-02", "2026-03-04")
    assert list(queries.custom_funnel(reader, spec).df["entities"]) == [
        sum(1 for s in k.SESSIONS if s.purchase)
    ]
