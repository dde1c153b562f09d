"""How numbers read on screen: thousands separators, money, percentages, and a KPI's change
against the previous period."""

from __future__ import annotations

import math

CURRENCY = "$"  # the demo shop's prices and revenue are in US dollars (docs/event-contract.md)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def count(value) -> str:
    return "–" if _missing(value) else f"{int(value):,}"


def money(value) -> str:
    return "–" if _missing(value) else f"{CURRENCY}{float(value):,.2f}"


def pct(value, digits: int = 1) -> str:
    return "–" if _missing(value) else f"{float(value):,.{digits}f}%"


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
