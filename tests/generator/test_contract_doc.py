"""docs/event-contract.md stays true to the contract: its examples validate and cover every
known event, and the schema itself is a valid JSON Schema 2020-12."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((PROJECT_ROOT / "contract" / "event-v1.schema.json").read_text())
DOC = (PROJECT_ROOT / "docs" / "event-contract.md").read_text()
KNOWN = {
    "page_view", "category_view", "search", "product_view", "add_to_cart", "remove_from_cart",
    "update_cart_quantity", "checkout_start", "purchase", "sign_in", "sign_up",
}  # fmt: skip


def test_the_schema_is_valid_json_schema_2020_12():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_every_documented_example_validates_and_every_known_event_has_one():
    validator = jsonschema.Draft202012Validator(SCHEMA)
    examples = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", DOC, re.S)]
    for example in examples:
        assert list(validator.iter_errors(example)) == [], example["event_name"]
    assert {e["event_name"] for e in examples} == KNOWN
    # each example sits under the heading of its name
    for name in KNOWN:
        assert f"### `{name}`" in DOC


def test_the_schema_rejects_what_the_doc_says_it_rejects():
    validator = jsonschema.Draft202012Validator(SCHEMA)
    base = {"event_id": "6f1c2e1a-0b7e-4c1e-9a51-6b1d2c3e4f50", "event_name": "page_view",
            "event_timestamp": "2024-05-06T18:02:05.667Z", "anonymous_id": "a", "session_id": "s"}  # fmt: skip
    assert validator.is_valid(base)
    assert validator.is_valid(base | {"event_name": "wishlist_add"})  # unknown but well formed
    assert not validator.is_valid(base | {"event_name": "Add To Cart!"})
    assert not validator.is_valid({k: v for k, v in base.items() if k != "session_id"})
    assert not validator.is_valid(base | {"event_timestamp": "yesterday"})
    assert not validator.is_valid(base | {"event_name": "purchase"})  # no order
    assert not validator.is_valid(base | {"event_name": "add_to_cart", "product": {"id": "1"}})  # no quantity
