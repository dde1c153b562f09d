"""How numbers read on screen: thousands separators, money, percentages, and a KPI's change
against the previous period."""

from __future__ import annotations

import math
import numbers

CURRENCY = "$"  # the demo shop's prices and revenue are in US dollars (docs/event-contract.md)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def count(value) -> str:
    return "–" if _missing(value) else f"{int(value):,}"


def money(value) -> str:
    return "–" if _missing(value) else f"{CURRENCY}{float(value):,.2f}"


def pct(value, digits: int = 1) -> str:
    return "–" if _missing(value) else f"{float(value):,.{digits}f}%"


def duration(seconds) -> str:
    """A time span as a person reads it: "45 s", "3.2 min", "1.5 h", "2.1 days"."""
    if _missing(seconds):
        return "–"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def days(n: int) -> str:
    return "1 day" if n == 1 else f"{n} days"


def change(current, previous, n_days: int, points: bool = False) -> str:
    """ "+12.3% vs previous 7 days"; for a rate (`points`), the change in percentage points."""
    against = f"vs previous {days(n_days)}"
    if _missing(current) or _missing(previous):
        return f"no rate {against}" if points else f"– {against}"
    if points:
        return f"{float(current) - float(previous):+.2f} pp {against}"
    if float(previous) == 0:
        return f"none in the previous {days(n_days)}" if float(current) else f"±0.0% {against}"
    return f"{100.0 * (float(current) - float(previous)) / float(previous):+.1f}% {against}"


MONEY_COLUMNS = {"revenue", "product_price"}


def _cell(column: str, value, whole: bool) -> str:
    if _missing(value):
        return ""
    if column in MONEY_COLUMNS:
        return money(value)
    if column.endswith("_pct") or column.startswith("% "):  # a rate: "% of first step" too
        return pct(value, 2 if column == "conversion_pct" else 1)
    return count(value) if whole else f"{float(value):,.2f}"


def numeric_columns(df) -> list[str]:
    return [
        c for c in df.columns if df[c].dtype.kind in "iuf" or (df[c].dtype.kind == "O" and _numbers(df[c]))
    ]


def _numbers(series) -> bool:
    values = [v for v in series if not _missing(v)]
    return bool(values) and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values)


def table(df):
    """A query's rows as a table reads them: numbers with thousands separators, money with its
    currency, rates with %; texts, dates and flags as they are. Returns the table and the
    positions of its number columns (to right-align)."""
    out = df.copy()
    columns = numeric_columns(df)
    for c in columns:
        whole = df[c].dtype.kind in "iu" or all(_missing(v) or float(v).is_integer() for v in df[c])
        out[c] = [_cell(c, v, whole) for v in df[c]]
    return out, [list(df.columns).index(c) for c in columns]
