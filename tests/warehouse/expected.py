"""What the warehouse should contain, computed in Python straight from raw event lines: the
contract (contract/event-v1.schema.json plus a real-date check), first loaded copy per
event_id, bots by the project's user-agent pattern."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "contract" / "event-v1.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
PROJECT_VARS = yaml.safe_load((ROOT / "dbt_project.yml").read_text())["vars"]
BOT_PATTERN = re.compile(PROJECT_VARS["bot_user_agent_pattern"], re.IGNORECASE)
RFC3339 = re.compile(
    r"^[1-9]\d{3}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-](0\d|1[0-5]):[0-5]\d)$"
)


def parses(value: object) -> bool:
    if not isinstance(value, str) or not RFC3339.match(value):
        return False
    text = value.replace("t", "T").replace("z", "Z").replace(" ", "T")
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def moment(value: str) -> datetime:
    text = value.replace("t", "T").replace("z", "Z").replace(" ", "T")
    return datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", text))


def in_window(event_timestamp: str, received_at: str) -> bool:
    """The contract's window (x-limits) around received_at."""
    limits = SCHEMA["x-limits"]
    gap = moment(event_timestamp) - moment(received_at)
    ahead = timedelta(seconds=limits["max_clock_ahead_seconds"])
    behind = timedelta(days=limits["max_event_age_days"])
    return -behind <= gap <= ahead


def is_valid(payload: object) -> bool:
    if not isinstance(payload, dict) or not VALIDATOR.is_valid(payload):
        return False
    if not parses(payload["event_timestamp"]):
        return False
    if "received_at" not in payload:
        return True
    return parses(payload["received_at"]) and in_window(payload["event_timestamp"], payload["received_at"])


def is_bot(payload: dict) -> bool:
    agent = (payload.get("device") or {}).get("user_agent")
    return bool(agent and BOT_PATTERN.search(agent))


@dataclass
class Expected:
    """Counts the marts must show for raw lines given in load order."""

    events: list[dict]  # first valid copy per event_id, bots excluded, in load order
    bots: int
    invalid_lines: int

    @classmethod
    def from_lines(cls, lines: list[object]) -> Expected:
        seen: set[str] = set()
        events: list[dict] = []
        bots = 0
        invalid = 0
        for payload in lines:
            if not is_valid(payload):
                invalid += 1
                continue
            if payload["event_id"] in seen:
                continue
            seen.add(payload["event_id"])
            if is_bot(payload):
                bots += 1
            else:
                events.append(payload)
        return cls(events=events, bots=bots, invalid_lines=invalid)

    def by_event_name(self) -> Counter:
        return Counter(event["event_name"].strip().lower() for event in self.events)

    def product_views(self) -> Counter:
        return Counter(e["product"]["id"] for e in self.events if e["event_name"] == "product_view")

    def adds_to_cart(self) -> Counter:
        return Counter(e["product"]["id"] for e in self.events if e["event_name"] == "add_to_cart")

    def latest_product_names(self) -> dict[str, str | None]:
        """Latest name per product by event time among sightings with a name (product blocks
        and order items), as dim_products keeps it."""
        latest: dict[str, tuple[str, str]] = {}
        for event in self.events:
            at = event["event_timestamp"]
            sightings = []
            if isinstance(event.get("product"), dict):
                sightings.append(event["product"])
            for item in (event.get("order") or {}).get("items") or []:
                sightings.append({"id": item.get("product_id"), "name": item.get("name")})
            for product in sightings:
                if product.get("name") is None:
                    continue
                when = datetime.fromisoformat(at.replace("Z", "+00:00"))
                key = product["id"]
                if key not in latest or when >= latest[key][0]:
                    latest[key] = (when, product["name"])
        return {key: value[1] for key, value in latest.items()}
