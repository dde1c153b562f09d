"""Validation of one raw event against contract/event-v1.schema.json (JSON Schema 2020-12),
plus a real RFC 3339 parse of its timestamp (the schema's pattern alone accepts 2024-02-30)."""

from __future__ import annotations

import json
import re
from datetime import datetime
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


def event_errors(event: Any) -> list[str]:
    """Every reason the event breaks the contract (empty when it is valid)."""
    if not isinstance(event, dict):
        return [f"event is not a JSON object (got {type(event).__name__})"]
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
                parse_rfc3339(timestamp)
            except ValueError as exc:
                reasons.append(f"$.event_timestamp: not a valid RFC 3339 date-time ({exc})")
    return reasons
