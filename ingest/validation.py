"""Validation of one raw event against contract/event-v1.schema.json (JSON Schema 2020-12),
plus what a schema cannot say: a real RFC 3339 parse of its timestamp (the schema's pattern alone
accepts 2024-02-30), the contract's ``x-limits`` (the time window around ``received_at``, finite
numbers, valid Unicode) that the loader and the warehouse's contract check apply too."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

_HERE = Path(__file__).resolve().parent
# the contract lives at the project root; a deployment package may carry a copy next to this module
SCHEMA_CANDIDATES = (
    _HERE / "contract" / "event-v1.schema.json",
    _HERE.parent / "contract" / "event-v1.schema.json",
)
MAX_REASONS = 5
# stands in for the session_id of a Segment message while it is validated: such an event is
# stored without one and the warehouse derives its session (docs/warehouse.md)
SESSIONLESS_PLACEHOLDER = "(derived in the warehouse)"
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _load_schema() -> dict[str, Any]:
    for path in SCHEMA_CANDIDATES:
        if path.exists():
            return json.loads(path.read_text())
    raise FileNotFoundError(f"event contract not found in {[str(p) for p in SCHEMA_CANDIDATES]}")


SCHEMA = _load_schema()
Draft202012Validator.check_schema(SCHEMA)
VALIDATOR = Draft202012Validator(SCHEMA)
LIMITS = SCHEMA["x-limits"]
# an event as stored (one NDJSON line) at most this: the loader refuses longer lines
MAX_EVENT_BYTES: int = LIMITS["max_event_bytes"]
# event_timestamp at most this far after received_at, and at most this far before it
MAX_CLOCK_AHEAD = timedelta(seconds=LIMITS["max_clock_ahead_seconds"])
MAX_EVENT_AGE = timedelta(days=LIMITS["max_event_age_days"])
# an integer literal longer than this is no finite double: refused like 1e400 (and json's own
# 4,300-digit limit never turns one bad event into a refused request)
MAX_INTEGER_DIGITS = 309
_SIMPLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def parse_json_int(text: str) -> int | float:
    """``parse_int`` for json.loads: an integer too long for a double becomes infinity, which
    ``unrepresentable`` then refuses with the event's other faults."""
    return int(text) if len(text.lstrip("-")) <= MAX_INTEGER_DIGITS else math.inf


def _is_storable(text: str) -> bool:
    """Valid Unicode (no lone surrogate) without NUL, which PostgreSQL's text and jsonb refuse."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unrepresentable(value: Any, limit: int = MAX_REASONS) -> list[str]:
    """Where a value holds what the stored JSON (and PostgreSQL's jsonb) cannot: a number that
    is not finite (1e400, an over-long integer), a string or key with a lone surrogate or NUL.
    Iterative: any depth json.loads accepted is walked without recursion."""
    reasons: list[str] = []
    stack: list[tuple[str, Any]] = [("$", value)]
    while stack and len(reasons) < limit:
        path, item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            reasons.append(f"{path}: not a finite number")
        elif isinstance(item, str):
            if not _is_storable(item):
                reasons.append(f"{path}: not storable text (a lone surrogate or NUL)")
        elif isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                if isinstance(key, str) and not _is_storable(key):
                    reasons.append(f"{path}: a key is not storable text (a lone surrogate or NUL)")
                    continue
                stack.append((f"{path}.{key}" if _SIMPLE_KEY.match(str(key)) else f"{path}[{key!r}]", child))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", child) for i, child in reversed(list(enumerate(item))))
    return reasons


def time_window_errors(event_at: datetime, received_at: datetime) -> list[str]:
    """The contract's window: a client clock far ahead, or an event older than the endpoint
    keeps, never reaches the warehouse (each distinct month would become a partition)."""
    if event_at - received_at > MAX_CLOCK_AHEAD:
        hours = MAX_CLOCK_AHEAD.total_seconds() / 3600
        return [
            f"$.event_timestamp: more than {hours:g} hours after the time received "
            f"({received_at.isoformat(timespec='seconds')}): the client's clock is wrong"
        ]
    if received_at - event_at > MAX_EVENT_AGE:
        return [
            f"$.event_timestamp: more than {MAX_EVENT_AGE.days} days before the time received "
            f"({received_at.isoformat(timespec='seconds')})"
        ]
    return []


def parse_rfc3339(value: str) -> datetime:
    """Parse an RFC 3339 date-time with offset; ValueError when it is not one."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("not an RFC 3339 date-time with offset")
    normalized = value[:10] + "T" + value[11:]
    if normalized[-1] in "Zz":
        normalized = normalized[:-1] + "+00:00"
    parsed = datetime.fromisoformat(normalized)
    if parsed.tzinfo is None:
        raise ValueError("no UTC offset")
    return parsed


def event_errors(event: Any, received_at: datetime | None = None) -> list[str]:
    """Every reason the event breaks the contract (empty when it is valid); with
    ``received_at``, its timestamp is held to the contract's window around it too."""
    if not isinstance(event, dict):
        return [f"event is not a JSON object (got {type(event).__name__})"]
    unstorable = unrepresentable(event)
    if unstorable:
        return unstorable
    # received_at is the server's to set: the client's value is ignored, not judged
    candidate = {k: v for k, v in event.items() if k != "received_at"}
    errors = sorted(VALIDATOR.iter_errors(candidate), key=lambda e: (list(e.absolute_path), e.message))
    reasons = [f"{e.json_path}: {e.message}" for e in errors[:MAX_REASONS]]
    if len(errors) > MAX_REASONS:
        reasons.append(f"... and {len(errors) - MAX_REASONS} more")
    timestamp = candidate.get("event_timestamp")
    if not errors or all(list(e.absolute_path) != ["event_timestamp"] for e in errors):
        if isinstance(timestamp, str):
            try:
                event_at = parse_rfc3339(timestamp)
            except ValueError as exc:
                reasons.append(f"$.event_timestamp: not a valid RFC 3339 date-time ({exc})")
            else:
                if received_at is not None:
                    reasons.extend(time_window_errors(event_at, received_at))
    return reasons
