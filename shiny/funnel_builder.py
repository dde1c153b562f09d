"""The funnel builder of the Funnel page (a module): the person's own funnel, asked of the
warehouse's `analytics.funnel(spec jsonb)`.

Steps are added, removed and moved up or down (up to 10), each an event with optional filters
(category or a parent category, brand, product id, price range, page path prefix, search text);
the window, sessions or users, in order or in any order, and a breakdown apply to the whole
funnel; the page's dates, devices and sources complete the spec (`funnel_spec.py`). Funnels are
saved by name in `analytics.saved_funnels` and opened by anyone from a select; saving under a
name that exists asks before replacing it.

Each step's inputs are named by a stable number (`step<uid>_event`, ...), not by position, so
moving a step keeps what was typed in it. The steps are drawn again only when the list changes
(add, remove, move, open); the step buttons send one input, `action` ({op, uid})."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import funnel_spec as fs
import queries
import viewstate as vs
from filters import FilterBar, latest_choices
from htmltools import Tag
from inputs import InvalidInput
from querying import SessionDb

from shiny import Inputs, Outputs, Session, module, reactive, render, ui

STANDARD_STEPS = ("page_view", "product_view", "add_to_cart", "checkout_start", "purchase")
NO_STEPS = "Add a step to build a funnel."
NAME_LIMIT = 200
CSS = """
.funnel-builder .step-event { flex: 0 1 22rem; min-width: 10rem; }
.funnel-builder .step-event .form-group, .funnel-builder .step-event .shiny-input-container { margin-bottom: 0; }
.funnel-builder .step-filters summary { color: var(--bs-secondary-color); }
.funnel-builder .builder-save { max-width: 40rem; }
.funnel-builder .builder-save .btn { margin-bottom: 1rem; }
.funnel-builder .builder-open { flex: 0 1 18rem; min-width: 12rem; }
.funnel-builder .builder-open .form-group, .funnel-builder .builder-open .shiny-input-container { margin-bottom: 0; }
.custom-funnel .shiny-data-grid th { white-space: normal; }  /* long headers wrap: the figures stay in view */
.custom-funnel .sql-details pre { white-space: pre-wrap; overflow-wrap: anywhere; }
"""


def _window_choices(window: str) -> list[str]:
    return list(fs.WINDOW_PRESETS) + ([window] if window not in fs.WINDOW_PRESETS else [])


@module.ui
def builder_ui(c: dict, state: fs.Builder):
    """The builder's card; `state`: the builder the URL asks for (its steps are drawn by the
    server, its options start here). Without steps it is one row (add a step, start from the
    standard funnel, open a saved one); the options and saving show with the first step."""
    initial = "custom" if state.steps else "standard"

    def with_steps(*children, **attrs) -> Tag:
        return ui.panel_conditional(f"(output.mode || '{initial}') === 'custom'", *children, **attrs)

    return ui.TagList(
        ui.tags.style(CSS),
        ui.card(
            ui.card_header(ui.span("Build your own funnel", class_="fw-semibold")),
            ui.output_ui("steps"),
            ui.div(
                ui.input_action_button("add", "+ Add a step", class_="btn-sm btn-primary"),
                ui.input_action_button(
                    "standard", "Start from the standard funnel", class_="btn-sm btn-outline-secondary"
                ),
                with_steps(
                    ui.input_action_button("clear", "Clear the steps", class_="btn-sm btn-outline-secondary")
                ),
                ui.div(
                    ui.input_select("saved", None, {"": "Open a saved funnel…"}, width="100%"),
                    class_="builder-open",
                ),
                class_="d-flex flex-wrap align-items-center gap-2 mb-2",
            ),
            with_steps(
                ui.layout_columns(
                    ui.input_selectize(
                        "window",
                        "Whole funnel within",
                        _window_choices(state.window),
                        selected=state.window,
                        options={
                            "create": True,
                            "createOnBlur": True,
                            "persist": False,
                            "placeholder": "e.g. 45 minutes",
                        },
                    ),
                    ui.input_radio_buttons("count", "Count", fs.COUNTS, selected=state.count, inline=True),
                    ui.input_radio_buttons("order", "Steps", fs.ORDERS, selected=state.order, inline=True),
                    ui.input_select("breakdown", "Breakdown", fs.BREAKDOWNS, selected=state.breakdown),
                    col_widths={"sm": 12, "md": 6, "lg": 3},
                ),
                ui.div(
                    ui.input_text("name", "Save this funnel as", placeholder="a name", width="100%"),
                    ui.input_action_button("save", "Save", class_="btn-sm btn-outline-primary"),
                    class_="d-flex align-items-end gap-2 builder-save",
                ),
            ),
            ui.output_ui("message"),
            ui.div(ui.output_text("mode"), class_="d-none"),
            class_="funnel-builder",
        ),
    )


def _step_row(k: int, n: int, uid: int, step: fs.Step, c: dict, action_id: str) -> Tag:
    """One step: its number, its event, its filters (open when it has some) and its buttons."""
    sid = f"step{uid}"
    known = fs.Known.of(c)
    events = sorted(known.events | {step.event})
    categories = {"": "any", **{x: x for x in sorted(known.categories | ({step.category} - {None}))}}
    brands = {
        "": "any",
        **{b: b for b in sorted({*known.brands.values(), *([step.brand] if step.brand else [])})},
    }

    def button(op: str, label: str, title: str, disabled: bool = False) -> Tag:
        return ui.tags.button(
            label,
            type="button",
            title=title,
            class_=f"btn btn-sm btn-outline-secondary step-{op}",
            disabled=disabled or None,
            **{"aria-label": f"{title} (step {k})"},
            onclick=f"Shiny.setInputValue('{action_id}', {{op: '{op}', uid: {uid}}}, {{priority: 'event'}})",
        )

    def number(key: str, value: float | None) -> Tag:
        shown = None if value is None else fs.plain_number(value)
        return ui.input_numeric(
            f"{sid}_{key}", fs.FILTER_LABELS[key], shown, min=0, step=1, update_on="blur", width="100%"
        )

    def text(key: str, value: str | None, placeholder: str) -> Tag:
        return ui.input_text(
            f"{sid}_{key}",
            fs.FILTER_LABELS[key],
            value or "",
            placeholder=placeholder,
            update_on="blur",
            width="100%",
        )

    has_filters = bool(step.filters())
    return ui.div(
        ui.div(
            ui.span(str(k), class_="badge text-bg-secondary step-number"),
            ui.div(
                ui.input_select(f"{sid}_event", None, events, selected=step.event, width="100%"),
                class_="step-event",
            ),
            button("up", "↑", "Move up", disabled=k == 1),
            button("down", "↓", "Move down", disabled=k == n),
            button("remove", "✕", "Remove"),
            class_="d-flex align-items-center gap-2",
        ),
        ui.tags.details(
            ui.tags.summary(f"Filters ({len(step.filters())})" if has_filters else "Filters", class_="small"),
            ui.layout_columns(
                ui.input_selectize(
                    f"{sid}_category", fs.FILTER_LABELS["category"], categories, selected=step.category or ""
                ),
                ui.input_selectize(
                    f"{sid}_brand", fs.FILTER_LABELS["brand"], brands, selected=step.brand or ""
                ),
                text("product_id", step.product_id, "e.g. 1005115"),
                number("price_min", step.price_min),
                number("price_max", step.price_max),
                text("page_path", step.page_path, "e.g. /product/"),
                text("search", step.search, "e.g. phone"),
                col_widths={"sm": 12, "md": 6, "lg": 3},
            ),
            open=has_filters or None,
            class_="step-filters ms-4",
        ),
        class_="funnel-step border-bottom py-2",
        data_step=str(k),
    )


@module.server
def builder_server(
    input: Inputs,
    output: Outputs,
    session: Session,
    db: SessionDb,
    bar: FilterBar,
    initial: fs.Builder,
):
    """`bar`: the page's filter bar (a saved funnel opens with its dates, devices and sources);
    `initial`: the builder the URL asks for. Returns `state()`, the builder as it is now
    (never raises: a value outside its choices is dropped, as in the URL) and `spec(previous)`,
    the spec of the page's dates (or the period before), raising `InvalidInput` without steps."""
    uids = reactive.value([])
    pending: dict[int, fs.Step] = {}  # steps whose inputs the browser has not sent yet
    numbers = itertools.count(1)
    note = reactive.value(None)  # (kind, text) of the message under the builder
    saved_version = reactive.value(0)
    to_save: dict = {}

    def load(steps) -> None:
        new = []
        for step in list(steps)[: fs.MAX_STEPS]:
            uid = next(numbers)
            pending[uid] = step
            new.append(uid)
        uids.set(new)

    load(initial.steps)

    def apply(builder: fs.Builder) -> None:
        """Show this builder: its steps and its options."""
        load(builder.steps)
        ui.update_selectize("window", choices=_window_choices(builder.window), selected=builder.window)
        ui.update_radio_buttons("count", selected=builder.count)
        ui.update_radio_buttons("order", selected=builder.order)
        ui.update_select("breakdown", selected=builder.breakdown)

    def value(uid: int, key: str):
        held = input[f"step{uid}_{key}"]
        if held.is_set():
            return held()
        return getattr(pending.get(uid) or fs.Step(""), key)

    def step_of(uid: int) -> fs.Step | None:
        """The step as its inputs hold it, checked like a step from the URL."""
        raw = {key: value(uid, key) for key in ("event", *fs.FILTER_LABELS)}
        return fs.checked_step(raw, fs.Known.of(latest_choices()), drop_crossed_prices=False)

    @reactive.calc
    def state() -> fs.Builder:
        steps = [step_of(uid) for uid in uids()]
        window = input.window()
        window = vs.clean_text(window, fs.WINDOW_LIMIT) if isinstance(window, str) else ""
        count, order, breakdown = (
            v if isinstance(v, str) else "" for v in (input.count(), input.order(), input.breakdown())
        )
        return fs.Builder(
            steps=tuple(s for s in steps if s is not None),
            window=window or fs.DEFAULT_WINDOW,
            count=count if count in fs.COUNTS else "sessions",
            order=order if order in fs.ORDERS else "ordered",
            breakdown=breakdown if breakdown in fs.BREAKDOWNS else "",
        )

    def spec(previous: bool = False) -> dict:
        builder = state()
        if not builder.steps:
            raise InvalidInput(NO_STEPS)
        start, end = bar.dates()
        if previous:
            try:
                start, end = queries.previous_period(start, end)
            except OverflowError as exc:
                raise InvalidInput("That date range is not valid.") from exc
        segment = bar.segment()
        return fs.spec(builder, start, end, segment["devices"], segment["sources"])

    @output(suspend_when_hidden=False)  # the page shows or hides its parts by it
    @render.text
    def mode():
        return "custom" if uids() else "standard"

    @render.ui
    def steps():
        ids = uids()
        c = latest_choices()
        with reactive.isolate():
            rows = []
            for k, uid in enumerate(ids, 1):
                step = step_of(uid) or pending.get(uid) or fs.Step(value(uid, "event") or "")
                rows.append(_step_row(k, len(ids), uid, step, c, session.ns("action")))
        if not rows:
            return ui.p(
                "No steps yet: below is the standard funnel. Add steps to ask your own question, e.g. sessions "
                "that viewed a smartphone, added it to the cart within 10 minutes, then bought.",
                class_="text-muted small mb-2",
            )
        return ui.div(*rows, class_="mb-2")

    def say(kind: str | None, text: str | None = None) -> None:
        note.set((kind, text) if kind else None)

    @render.ui
    def message():
        held = note()
        if not held:
            return None
        kind, text = held
        return ui.div(text, class_=f"alert alert-{kind} py-1 px-2 mb-0 small builder-message")

    # --- changing the steps ----------------------------------------------------------------------

    @reactive.effect
    @reactive.event(input.add)
    def _add():
        ids = list(uids())
        if len(ids) >= fs.MAX_STEPS:
            say("warning", f"A funnel has at most {fs.MAX_STEPS} steps.")
            return
        known = fs.Known.of(latest_choices())
        last = step_of(ids[-1]) if ids else None
        following = [e for e in STANDARD_STEPS if e in known.events]
        if last and last.event in following and following.index(last.event) + 1 < len(following):
            event = following[following.index(last.event) + 1]
        else:
            event = (
                last.event
                if last
                else (following[1] if len(following) > 1 else min(known.events, default=""))
            )
        uid = next(numbers)
        pending[uid] = fs.Step(event)
        uids.set([*ids, uid])
        say(None)

    @reactive.effect
    @reactive.event(input.action)
    def _act():
        act = input.action()
        if not isinstance(act, dict):
            return
        ids = list(uids())
        op, uid = act.get("op"), act.get("uid")
        if uid not in ids or op not in ("up", "down", "remove"):
            return
        i = ids.index(uid)
        if op == "remove":
            ids.pop(i)
        elif op == "up" and i > 0:
            ids[i - 1], ids[i] = ids[i], ids[i - 1]
        elif op == "down" and i + 1 < len(ids):
            ids[i], ids[i + 1] = ids[i + 1], ids[i]
        else:
            return
        uids.set(ids)
        say(None)

    @reactive.effect
    @reactive.event(input.standard)
    def _standard():
        known = fs.Known.of(latest_choices())
        load(fs.Step(e) for e in (queries.step_labels() or STANDARD_STEPS) if e in known.events)
        say(None)

    @reactive.effect
    @reactive.event(input.clear)
    def _clear():
        uids.set([])
        say(None)

    # --- saved funnels ---------------------------------------------------------------------------

    @reactive.calc
    def saved() -> queries.QueryResult:
        saved_version()
        return db.q(queries.saved_funnels)

    @reactive.effect
    def _saved_choices():
        r = saved()
        names = [] if r.error or r.empty else list(r.df["name"])
        ui.update_select("saved", choices={"": "Open a saved funnel…", **{n: n for n in names}}, selected="")

    @reactive.effect
    @reactive.event(input.saved, ignore_init=True)
    def _open():
        name = input.saved()
        if not isinstance(name, str) or not name:
            return
        with reactive.isolate():
            r = saved()
        rows = r.df[r.df["name"] == name] if not (r.error or r.empty) else r.df
        if rows.empty:
            say("warning", f"No saved funnel is named “{name}”.")
            return
        row = rows.iloc[0]
        c = latest_choices()
        builder, dates, devices, sources = fs.checked_spec(row["spec"], fs.Known.of(c), c)
        if not builder.steps:
            say("warning", f"“{name}” names no event this warehouse holds.")
            return
        apply(builder)
        ui.update_select("saved", selected="")
        ui.update_text("name", value=name)
        bar.apply(dates=dates, devices=devices, sources=sources)
        say(
            "success", f"Opened “{name}”, saved by {row['saved_by']} on {row['saved_at']:%Y-%m-%d %H:%M} UTC."
        )

    def _store(name: str, spec: dict, overwrite: bool) -> None:
        r = db.q(queries.save_funnel, name, spec, overwrite)
        if r.error:
            say("warning", r.error)
        elif r.empty:  # the name is taken: ask before replacing it
            to_save.update(name=name, spec=spec)
            ui.modal_show(
                ui.modal(
                    ui.p(f"A funnel named “{name}” is already saved. Replace it with this one?"),
                    title="Replace a saved funnel?",
                    footer=ui.div(
                        ui.input_action_button(session.ns("replace"), "Replace it", class_="btn-danger"),
                        ui.modal_button("Cancel"),
                        class_="d-flex gap-2",
                    ),
                    easy_close=True,
                )
            )
        else:
            say("success", f"Saved “{name}”: anyone can open it from “Open a saved funnel”.")
            saved_version.set(saved_version.get() + 1)

    @reactive.effect
    @reactive.event(input.save)
    def _save():
        name = input.name()
        name = vs.clean_text(name, NAME_LIMIT) if isinstance(name, str) else ""
        if not name:
            say("warning", "Give the funnel a name to save it.")
            return
        try:
            spec_now = spec()
        except InvalidInput as exc:
            say("warning", str(exc))
            return
        _store(name, spec_now, overwrite=False)

    @reactive.effect
    @reactive.event(input.replace)
    def _replace():
        ui.modal_remove()
        if to_save:
            _store(to_save["name"], to_save["spec"], overwrite=True)
            to_save.clear()

    return BuilderHandle(state, spec, apply)


class BuilderHandle:
    """What the page reads from the builder (`state()`, `spec(previous)`) and `apply(builder)`,
    to show a builder (the URL's, once the database is back)."""

    def __init__(
        self, state: Callable[[], fs.Builder], spec: Callable[..., dict], apply: Callable[[fs.Builder], None]
    ) -> None:
        self.state = state
        self.spec = spec
        self.apply = apply
