"""Checking the browser's inputs before any query runs.

A client can send any value for any input over the websocket. A date that is not a date, a
range that ends before it starts, or a value that is not one of an input's fixed choices
raises `InvalidInput` with the plain message the cards show; the query that would have read
it never runs (`querying.SessionDb.side_by_side`)."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from datetime import date

BAD_DATES = "That date range is not valid."
BAD_CHOICE = "That choice is not valid."
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class InvalidInput(ValueError):
    """An input value the dashboards refuse; `str(exc)` is the message for the user."""


def checked_date(value) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidInput(BAD_DATES)


def checked_dates(value) -> tuple[date, date]:
    """A (start, end) pair of dates, start on or before end."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise InvalidInput(BAD_DATES)
    start, end = checked_date(value[0]), checked_date(value[1])
    if start > end:
        raise InvalidInput(BAD_DATES)
    return start, end


def checked_choice(value, choices: Collection[str]) -> str:
    """One of an input's fixed choices (a radio button, a select)."""
    if not isinstance(value, str) or value not in choices:
        raise InvalidInput(BAD_CHOICE)
    return value


def checked_choices(values, choices: Collection[str]) -> tuple[str, ...]:
    """A multi-select whose every value is one of its choices (empty: "all")."""
    values = _strings(values)
    if any(v not in choices for v in values):
        raise InvalidInput(BAD_CHOICE)
    return values


def text_values(values) -> tuple[str, ...]:
    """A multi-select whose choices come from the data (devices, brands, ...): any texts, bound
    as parameters; anything but a list of texts is refused."""
    return _strings(values)


def _strings(values) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise InvalidInput(BAD_CHOICE)
    values = tuple(values)
    if any(not isinstance(v, str) for v in values):
        raise InvalidInput(BAD_CHOICE)
    return values
