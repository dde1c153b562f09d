"""Pure plot functions: a query's DataFrame in, a plotly figure out.

Figures are rendered to an HTML fragment without plotly.js; the page loads plotly.js once
from the plotly package itself (see `plotly_loader`), so nothing comes from a CDN.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pandas as pd
import plotly
import plotly.graph_objects as go
from htmltools import HTML, Tag, tags

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
LAYOUT = {
    "template": "plotly_white",
    "margin": {"l": 50, "r": 20, "t": 30, "b": 40},
    "height": 340,
    "legend": {"orientation": "h", "y": -0.18},
}


PLOTLY_JS_DIR = Path(plotly.__file__).parent / "package_data"  # holds plotly.min.js
PLOTLY_JS_URL = "plotly/plotly.min.js"  # relative: works under any mount prefix


def plotly_loader() -> Tag:
    """Load plotly.min.js (served from the installed plotly package: the machine may be offline)
    once the first outputs are on screen: the numbers do not wait for 4.7 MB of JavaScript
    to be parsed; the charts draw themselves as soon as it is there (see `to_html`)."""
    return tags.script(
        HTML(
            "(function () {"
            " function load() {"
            "  if (window.Plotly || document.getElementById('plotly-js')) { return; }"
            "  var s = document.createElement('script'); s.id = 'plotly-js'; s.async = true;"
            f"  s.src = '{PLOTLY_JS_URL}'; document.head.appendChild(s);"
            " }"
            " $(document).one('shiny:idle', function () { setTimeout(load, 0); });"
            " setTimeout(load, 3000);"
            "})();"
        )
    )


def to_html(fig: go.Figure, div_id: str | None = None) -> str:
    """A div plus a script that draws the figure as soon as plotly.js is there. The figure's
    JSON has every '<' escaped, so text from the data (product names...) cannot end the script."""
    margin = dict(LAYOUT["margin"], **(fig.layout.margin.to_plotly_json() if fig.layout.margin else {}))
    fig.update_layout(**dict(LAYOUT, margin=margin))
    div_id = div_id or f"plot-{uuid.uuid4().hex[:10]}"
    spec = fig.to_json(validate=False).replace("<", "\\u003c")
    config = json.dumps({"displaylogo": False, "responsive": True})
    height = LAYOUT["height"]
    return (
        f'<div id="{div_id}" class="plotly-graph-div" style="height:{height}px; width:100%;"></div>'
        "<script>(function draw() {"
        " if (!window.Plotly) { return setTimeout(draw, 25); }"
        f' var el = document.getElementById("{div_id}"); if (!el) {{ return; }}'
        f" var fig = {spec}; Plotly.newPlot(el, fig.data, fig.layout, {config});"
        "})();</script>"
    )


def funnel_figure(df: pd.DataFrame, step_labels: dict[str, str]) -> go.Figure:
    """Sessions per step; `step_labels` (step -> label, from the dbt project) names them."""
    labels = [step_labels.get(s, s) for s in df["step"]]
    text = [
        f"{int(n):,}" + ("" if pd.isna(d) else f"  (−{d:.1f}%)")
        for n, d in zip(df["sessions"], df["drop_off_pct"], strict=True)
    ]
    fig = go.Figure(
        go.Funnel(
            y=labels,
            x=[int(v) for v in df["sessions"]],
            text=text,
            textinfo="text",
            marker={"color": "#2c7fb8"},
            hovertemplate="%{y}: %{x} sessions<extra></extra>",
        )
    )
    return fig


FUNNEL_COLOURS = ["#2c7fb8", "#e6550d", "#31a354", "#756bb1", "#636363", "#d6616b", "#8c6d31", "#17becf"]
BREAKDOWNS_DRAWN = 8  # a funnel broken down draws its largest values (the table lists them all)


def _wrap(text: str, width: int = 28) -> str:
    """A long step name on several lines (plotly's `<br>`), so the axis stays narrow."""
    lines, line = [], ""
    for word in str(text).split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "<br>".join([*lines, line])


def custom_funnel_figure(df: pd.DataFrame, entities: str = "sessions") -> go.Figure:
    """The builder's funnel (rows of `analytics.funnel`). Without a breakdown: how many
    `entities` reach each step, with the drop-off from the step before. With one: each value's
    share of its first step reaching each step, side by side (its largest `BREAKDOWNS_DRAWN`
    values, in the function's order: most entities at step 1 first)."""
    labels = {int(s): _wrap(f"{int(s)}. {n}") for s, n in zip(df["step"], df["step_name"], strict=True)}
    if df["breakdown"].isna().all():
        text = [
            f"{int(n):,}" + ("" if pd.isna(p) else f"  (−{100 - float(p):.1f}%)")
            for n, p in zip(df["entities"], df["pct_of_previous"], strict=True)
        ]
        fig = go.Figure(
            go.Funnel(
                y=[labels[int(s)] for s in df["step"]],
                x=[int(v) for v in df["entities"]],
                text=text,
                textinfo="text",
                marker={"color": "#2c7fb8"},
                customdata=df[["pct_of_first"]].astype(float).round(1).to_numpy(),
                hovertemplate=f"%{{y}}: %{{x:,}} {entities} (%{{customdata[0]}}% of the first step)<extra></extra>",
            )
        )
        fig.update_yaxes(automargin=True)
        fig.update_traces(cliponaxis=False)
        fig.update_layout(margin={"l": 10, "r": 70})  # room for "(−82.4%)" beside a thin bar
        return fig
    fig = go.Figure()
    drawn = list(dict.fromkeys(df["breakdown"]))[:BREAKDOWNS_DRAWN]
    # colours by the values' alphabetical order: the same values get the same colours in the
    # chart of the period before
    colours = {v: FUNNEL_COLOURS[i % len(FUNNEL_COLOURS)] for i, v in enumerate(sorted(drawn, key=str))}
    for value in drawn:
        part = df[df["breakdown"] == value]
        fig.add_trace(
            go.Bar(
                x=[labels[int(s)] for s in part["step"]],
                y=part["pct_of_first"].astype(float).round(1),
                name=str(value),
                marker={"color": colours[value]},
                customdata=part[["entities"]].to_numpy(),
                hovertemplate=f"{value}, %{{x}}: %{{customdata[0]:,}} {entities} (%{{y}}% of its first step)"
                "<extra></extra>",
            )
        )
    fig.update_layout(barmode="group", yaxis_title=f"% of the {entities} at step 1")
    return fig


def lines_by_group(df: pd.DataFrame, x: str, group: str, y: str, y_title: str = "events") -> go.Figure:
    fig = go.Figure()
    for name, part in df.groupby(group, sort=True):
        fig.add_trace(go.Scatter(x=part[x], y=part[y], mode="lines+markers", name=str(name)))
    fig.update_layout(yaxis_title=y_title, hovermode="x unified")
    return fig


def bars_by_group(df: pd.DataFrame, x: str, group: str, y: str, y_title: str = "events") -> go.Figure:
    fig = go.Figure()
    for name, part in df.groupby(group, sort=True):
        fig.add_trace(go.Bar(x=part[x].astype(str), y=part[y], name=str(name)))
    fig.update_layout(barmode="group", yaxis_title=y_title)
    return fig


def funnel_breakdown_figure(df: pd.DataFrame, step_labels: dict[str, str]) -> go.Figure:
    """Sessions reaching each step as % of the first step's sessions, one bar group per
    breakdown value; `step_labels` (step -> label, in funnel order) names the steps."""
    fig = go.Figure()
    steps = list(step_labels)
    for _, row in df.iterrows():
        base = row[steps[0]] or 0
        values = [round(100.0 * row[s] / base, 1) if base else 0 for s in steps]
        fig.add_trace(go.Bar(x=[step_labels[s] for s in steps], y=values, name=str(row["breakdown"])))
    fig.update_layout(barmode="group", yaxis_title="% of page-view sessions")
    return fig


def heatmap_figure(df: pd.DataFrame) -> go.Figure:
    grid = [[0] * 24 for _ in range(7)]
    for _, row in df.iterrows():
        grid[int(row["weekday"]) - 1][int(row["hour"])] = int(row["events"])
    fig = go.Figure(
        go.Heatmap(
            z=grid,
            x=list(range(24)),
            y=WEEKDAYS,
            colorscale="Blues",
            hovertemplate="%{y} %{x}:00 — %{z} events<extra></extra>",
        )
    )
    fig.update_layout(xaxis_title="hour of day", yaxis={"autorange": "reversed"})
    return fig


def rollup_figure(df: pd.DataFrame, label: str, top: int = 15) -> go.Figure:
    """Revenue of the `top` categories or brands (the table beside it lists them all)."""
    part = df.sort_values("revenue", ascending=False).head(top).iloc[::-1]
    fig = go.Figure(
        go.Bar(
            y=part[label].astype(str),
            x=part["revenue"],
            orientation="h",
            customdata=part[["views", "purchases", "purchase_rate_pct"]].to_numpy(),
            hovertemplate="%{y}: revenue %{x:,.2f}<br>views %{customdata[0]}, units %{customdata[1]},"
            " purchases per view %{customdata[2]}%<extra></extra>",
            marker={"color": "#2c7fb8"},
        )
    )
    fig.update_layout(xaxis_title=f"revenue (top {min(top, len(df))})", margin={"l": 160})
    return fig


def weekday_conversion_figure(df: pd.DataFrame) -> go.Figure:
    fig = go.Figure(go.Bar(x=df["day"], y=df["conversion_pct"], marker={"color": "#41ab5d"}))
    fig.update_layout(yaxis_title="% of sessions with a purchase")
    return fig


def ranking_figure(df: pd.DataFrame, column: str, label: str, top: int = 15) -> go.Figure:
    """The `top` products of a ranking query (already in rank order) as horizontal bars of the
    ranking metric `column`, the first at the top; hover names the product."""
    part = df.head(top).iloc[::-1]
    names = [f"{n} ({pid})" for pid, n in zip(part["product_id"], part["product_name"], strict=True)]
    fig = go.Figure(
        go.Bar(
            y=names,
            x=part[column],
            orientation="h",
            marker={"color": "#2c7fb8"},
            hovertemplate="%{y}: %{x:,}<extra></extra>",
        )
    )
    fig.update_layout(xaxis_title=f"{label} (top {min(top, len(df))})", margin={"l": 180})
    return fig


def attention_figure(df: pd.DataFrame) -> go.Figure:
    """Views against purchases per view, one point per product (hover names it). The
    high-attention, low-conversion quadrant (views at or above the top quartile, purchases per
    view at or below the bottom quartile: columns `views_p75`, `rate_p25_pct`) is shaded, its
    products drawn in orange."""
    views_p75, rate_p25 = float(df["views_p75"].iloc[0]), float(df["rate_p25_pct"].iloc[0])
    fig = go.Figure()
    for flagged, part in df.groupby("is_high_attention_low_conversion", sort=True):
        fig.add_trace(
            go.Scatter(
                x=part["views"],
                y=part["purchase_rate_pct"],
                mode="markers",
                name="high attention, low conversion" if flagged else "other products",
                marker={"color": "#e6550d" if flagged else "#2c7fb8", "size": 9},
                customdata=part[["product_id", "product_name", "purchases"]].to_numpy(),
                hovertemplate="%{customdata[1]} (%{customdata[0]})<br>%{x:,} views, %{customdata[2]:,} units"
                " bought, %{y:.1f} per 100 views<extra></extra>",
            )
        )
    x_max = max(float(df["views"].max()), views_p75) * 1.05
    fig.add_shape(
        type="rect",
        x0=views_p75,
        x1=x_max,
        y0=0,
        y1=rate_p25,
        fillcolor="#fdae6b",
        opacity=0.25,
        line={"width": 0},
        layer="below",
    )
    fig.add_vline(x=views_p75, line={"dash": "dot", "color": "#888"})
    fig.add_hline(y=rate_p25, line={"dash": "dot", "color": "#888"})
    fig.update_layout(
        xaxis_title="views (dotted: top quartile)",
        yaxis_title="units per 100 views",
        hovermode="closest",
    )
    return fig


SCALES = {"linear": "Linear", "log": "Log", "normalised": "% of each series' peak"}
_TIME_FORMATS = {"hour": "%b %d %H:%M", "day": "%b %d, %Y", "week": "week of %b %d, %Y"}


def time_series_figure(
    df: pd.DataFrame,
    x: str,
    group: str,
    y: str,
    grain: str = "day",
    scale: str = "linear",
    y_title: str = "events",
) -> go.Figure:
    """One line per group over time. `grain` (hour, day, week) formats the time axis, so a
    single day reads as its date, not as a time; `scale`: linear, log (small series stay
    visible next to big ones) or normalised (each series as % of its own peak). Hover always
    shows the counts."""
    fig = go.Figure()
    for name, part in df.groupby(group, sort=True):
        values = part[y].astype(float)
        shown = 100.0 * values / values.max() if scale == "normalised" and values.max() else values
        fig.add_trace(
            go.Scatter(
                x=part[x],
                y=shown,
                mode="lines+markers",
                name=str(name),
                customdata=part[[y]].to_numpy(),
                hovertemplate=f"{name}: %{{customdata[0]:,}} {y_title}<extra></extra>",
            )
        )
    fmt = _TIME_FORMATS.get(grain, "%b %d, %Y")
    fig.update_xaxes(type="date", tickformat=fmt, hoverformat=fmt)
    if grain != "hour" and df[x].nunique() <= 14:  # few periods: one tick each, at the period
        fig.update_xaxes(tickvals=sorted(df[x].unique()))
    title = {"normalised": f"% of each series' peak {y_title}", "log": f"{y_title} (log scale)"}
    fig.update_layout(yaxis_title=title.get(scale, y_title), hovermode="x unified")
    if scale == "log":
        fig.update_yaxes(type="log")
    return fig
