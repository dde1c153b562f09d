"""Right of access (``python -m loader export-person``): everything the warehouse holds about
one person, every id stitched to them included, and nothing about anyone else; an unknown id
says so. The oracle is the events the test wrote, not the warehouse."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta

import pytest

from tests.conftest import PROJECT_ROOT, VENV_BIN
from tests.warehouse import rawdata

T0 = rawdata.BASE_TIME


def ann_and_others() -> tuple[list[dict], list[dict], list[dict]]:
    """Ann on two devices (signed in on both), Bob, and a visitor who never signs in."""
    ann_phone = [
        rawdata.event("page_view", T0, session_id="s-ann-1", anonymous_id="anon-ann-phone"),
        rawdata.event(
            "sign_in",
            T0 + timedelta(minutes=1),
            session_id="s-ann-1",
            anonymous_id="anon-ann-phone",
            user_id="user-ann",
        ),
    ]
    ann_laptop = [
        rawdata.event(
            "page_view", T0 + timedelta(hours=3), session_id="s-ann-2", anonymous_id="anon-ann-laptop"
        ),
        rawdata.event(
            "product_view",
            T0 + timedelta(hours=3, minutes=1),
            session_id="s-ann-2",
            anonymous_id="anon-ann-laptop",
            product="p-1",
        ),
        rawdata.event(
            "sign_in",
            T0 + timedelta(hours=3, minutes=2),
            session_id="s-ann-2",
            anonymous_id="anon-ann-laptop",
            user_id="user-ann",
        ),
        rawdata.event(
            "purchase",
            T0 + timedelta(hours=3, minutes=4),
            session_id="s-ann-2",
            anonymous_id="anon-ann-laptop",
            user_id="user-ann",
            order=rawdata.order_payload("o-ann", [("p-1", 2)]),
        ),
    ]
    bob = [
        rawdata.event("page_view", T0, session_id="s-bob", anonymous_id="anon-bob"),
        rawdata.event(
            "sign_in",
            T0 + timedelta(minutes=2),
            session_id="s-bob",
            anonymous_id="anon-bob",
            user_id="user-bob",
        ),
    ]
    guest = [
        rawdata.event("page_view", T0 + timedelta(hours=1), session_id="s-guest", anonymous_id="anon-guest")
    ]
    return ann_phone + ann_laptop, bob, guest


@pytest.fixture(scope="module")
def warehouse(make_database, dbt):
    env = make_database()
    rawdata.create_raw_schema(env)
    ann, bob, guest = ann_and_others()
    rawdata.insert_raw(env, [*ann, *bob, *guest, *rawdata.shop_traffic(10, seed=41)])
    dbt(env, "build", "--exclude", "tag:full_scan")
    return env, ann, bob, guest


def export(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "python"), "-m", "loader", "export-person", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )


@pytest.mark.parametrize("asked", [("--user-id", "user-ann"), ("--anonymous-id", "anon-ann-phone")])
def test_everything_about_the_person_and_their_stitched_ids(warehouse, asked):
    env, ann, bob, _ = warehouse
    result = export(env, *asked)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["person"] == {
        "user_id": "user-ann",
        "anonymous_ids": ["anon-ann-laptop", "anon-ann-phone"],
        "user_keys": ["anon-ann-laptop", "anon-ann-phone", "user-ann"],
        "session_ids": ["s-ann-1", "s-ann-2"],
    }
    assert sorted(e["payload"]["event_id"] for e in document["raw_events"]) == sorted(
        e["event_id"] for e in ann
    )
    tables = document["tables"]
    assert sorted(r["event_id"] for r in tables["analytics.fact_events"]) == sorted(
        e["event_id"] for e in ann
    )
    assert {r["user_key"] for r in tables["analytics.fact_events"]} == {"user-ann"}, "stitched: one user"
    assert sorted(r["session_id"] for r in tables["analytics.fact_sessions"]) == ["s-ann-1", "s-ann-2"]
    assert [r["user_key"] for r in tables["analytics.dim_users"]] == ["user-ann"]
    assert [(r["order_id"], r["quantity"]) for r in tables["analytics.fact_order_items"]] == [("o-ann", 2)]
    assert sorted(r["anonymous_id"] for r in tables["intermediate.int_users_stitched"]) == [
        "anon-ann-laptop",
        "anon-ann-phone",
    ]
    assert document["counts"]["raw_events"] == len(ann)
    # nobody else's rows
    text = result.stdout
    for other in ("anon-bob", "user-bob", "s-bob", "anon-guest", "s-guest", *(e["event_id"] for e in bob)):
        assert other not in text, other


def test_a_visitor_never_stitched_is_their_anonymous_id(warehouse):
    env, _, _, guest = warehouse
    document = json.loads(export(env, "--anonymous-id", "anon-guest").stdout)
    assert document["person"]["user_id"] is None and document["person"]["user_keys"] == ["anon-guest"]
    assert [r["event_id"] for r in document["tables"]["analytics.fact_events"]] == [guest[0]["event_id"]]


def test_an_unknown_id_says_nothing_is_held(warehouse):
    env, *_ = warehouse
    result = export(env, "--user-id", "nobody")
    assert result.returncode == 1
    assert result.stderr.strip() == "nothing held for user_id nobody"
    assert result.stdout == ""


def test_exactly_one_id(warehouse):
    env, *_ = warehouse
    result = export(env, "--user-id", "user-ann", "--anonymous-id", "anon-bob")
    assert result.returncode == 2 and "not allowed with argument" in result.stderr
