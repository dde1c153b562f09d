"""The traffic generator: contract, determinism, size, layout, behaviour of the simulated
shoppers, dirty-data options, S3 output and flat memory."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
import tracemalloc
from collections import Counter, defaultdict
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest

from generator import generate_events, load_catalogue, write_events
from generator.writer import layout_prefix

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((PROJECT_ROOT / "contract" / "event-v1.schema.json").read_text())
START = "2024-05-06"  # a Monday
KNOWN_EVENTS = {
    "page_view",
    "category_view",
    "search",
    "product_view",
    "add_to_cart",
    "remove_from_cart",
    "update_cart_quantity",
    "checkout_start",
    "purchase",
    "sign_in",
    "sign_up",
}
COMMON_FIELDS = {
    "event_id",
    "event_name",
    "event_timestamp",
    "received_at",
    "schema_version",
    "anonymous_id",
    "session_id",
    "user_id",
    "page",
    "device",
    "traffic",
}
BLOCKS = {
    "product_view": {"product"},
    "add_to_cart": {"product", "quantity", "cart"},
    "remove_from_cart": {"product", "quantity", "cart"},
    "update_cart_quantity": {"product", "quantity", "cart"},
    "checkout_start": {"cart"},
    "purchase": {"order", "cart"},
    "search": {"search"},
    "category_view": {"properties"},
    "sign_in": {"properties"},
    "sign_up": {"properties"},
}
KEY_RE = re.compile(r"^events/(\d{4})/(\d{2})/(\d{2})/(\d{2})/[A-Za-z0-9._-]+\.json(\.gz)?$")
BOT_MARKERS = ("bot", "python-requests", "curl", "HeadlessChrome")


def parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def read_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def lines_of(data: bytes, name: str) -> list[dict]:
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    return [json.loads(line) for line in data.splitlines()]


@pytest.fixture(scope="module")
def one_day() -> list[dict]:
    """A whole clean day of traffic (about 30k events)."""
    return list(generate_events(seed=7, start=START, days=1))


def sessions_of(events: list[dict]) -> dict[str, list[dict]]:
    sessions: dict[str, list[dict]] = defaultdict(list)
    for event in events:
        sessions[event["session_id"]].append(event)
    for evs in sessions.values():
        evs.sort(key=lambda e: e["event_timestamp"])
    return sessions


def is_bot(event: dict) -> bool:
    return any(m in event["device"]["user_agent"] for m in BOT_MARKERS)


# ---- the contract ------------------------------------------------------------------------


def test_every_event_validates_against_the_contract(one_day):
    validator = jsonschema.Draft202012Validator(SCHEMA)
    sample = list(generate_events(seed=21, start=START, events=4000))
    # plus up to 100 events of every name from a whole day, so rare events are covered too
    per_name: dict[str, list[dict]] = defaultdict(list)
    for event in one_day:
        if len(per_name[event["event_name"]]) < 100:
            per_name[event["event_name"]].append(event)
    sample += [e for events in per_name.values() for e in events]
    errors = [(e.get("event_name"), err.message) for e in sample for err in validator.iter_errors(e)]
    assert errors == []
    assert set(per_name) == KNOWN_EVENTS


def test_every_known_event_appears_with_the_fields_its_name_carries(one_day):
    names = Counter(e["event_name"] for e in one_day)
    assert set(names) == KNOWN_EVENTS
    for event in one_day:
        name = event["event_name"]
        expected = COMMON_FIELDS | BLOCKS.get(name, set())
        assert set(event) == expected, name
        assert event["schema_version"] == "1"
        assert set(event["page"]) == {"url", "path", "title", "referrer"}
        assert set(event["device"]) == {"type", "user_agent", "os", "browser", "screen"}
        assert set(event["traffic"]) == {"source", "medium", "campaign", "content", "term"}
        if "product" in event:
            assert set(event["product"]) == {"id", "name", "category", "brand", "price", "currency"}
        if "cart" in event:
            assert event["cart"]["cart_id"] and event["cart"]["currency"] == "USD"
        if name == "search":
            assert isinstance(event["search"]["query"], str) and event["search"]["results_count"] >= 0
    assert len({e["event_id"] for e in one_day}) == len(one_day)


def test_received_at_follows_event_time_closely_and_the_stream_is_in_arrival_order(one_day):
    received = [e["received_at"] for e in one_day]
    assert received == sorted(received)
    for event in one_day:
        delay = (parse_ts(event["received_at"]) - parse_ts(event["event_timestamp"])).total_seconds()
        assert 0 < delay <= 20


# ---- determinism and size ------------------------------------------------------------------


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(tmp_path):
    for run in ("a", "b", "c"):
        write_events(generate_events(seed=11 if run != "c" else 12, start=START, events=4000), tmp_path / run)
    a, b, c = (read_tree(tmp_path / run) for run in ("a", "b", "c"))
    assert a and a == b
    assert set(a) != set(c)
    assert b"".join(a.values()) != b"".join(c.values())


def test_gzip_output_is_deterministic_too(tmp_path):
    for run in ("a", "b"):
        write_events(
            generate_events(seed=5, start=START, events=3000), tmp_path / run, gzip=True, files_per_hour=3
        )
    a, b = read_tree(tmp_path / "a"), read_tree(tmp_path / "b")
    assert a == b
    assert all(name.endswith(".json.gz") for name in a)
    assert sum(len(lines_of(data, name)) for name, data in a.items()) == 3000


@pytest.mark.parametrize("count", [1, 997, 5000])
def test_events_gives_exactly_that_many_events(count):
    stats: dict = {}
    assert sum(1 for _ in generate_events(seed=3, start=START, events=count, stats=stats)) == count
    assert stats["sessions"] >= 1


def test_events_with_days_fits_the_events_into_about_that_span():
    events = list(generate_events(seed=3, start=START, days=2, events=20_000))
    assert len(events) == 20_000
    span = parse_ts(events[-1]["received_at"]) - parse_ts(events[0]["received_at"])
    assert 1.5 * 86400 < span.total_seconds() < 2.5 * 86400


def test_days_covers_the_whole_span_and_starts_at_start():
    events = list(generate_events(seed=3, start="2024-05-06T12:00:00Z", days=0.5, sessions_per_day=3000))
    first, last = parse_ts(events[0]["event_timestamp"]), parse_ts(events[-1]["event_timestamp"])
    assert first >= parse_ts("2024-05-06T12:00:00Z")
    assert first < parse_ts("2024-05-06T12:10:00Z")
    assert parse_ts("2024-05-06T23:00:00Z") < last < parse_ts("2024-05-07T02:00:00Z")


# ---- file layout ---------------------------------------------------------------------------


def test_files_are_under_the_utc_hour_of_received_at(tmp_path):
    summary = write_events(
        generate_events(seed=9, start="2024-05-06T22:00:00Z", events=6000, late_share=0.02),
        tmp_path / "out",
        files_per_hour=2,
    )
    tree = read_tree(tmp_path / "out")
    assert summary["files"] == len(tree) and summary["events"] == 6000
    total = 0
    hours = set()
    for name, data in tree.items():
        match = KEY_RE.match(name)
        assert match, name
        hour = "{}-{}-{}T{}".format(*match.groups()[:4])
        hours.add(hour)
        for event in lines_of(data, name):
            assert event["received_at"][:13] == hour
            total += 1
    assert total == 6000
    assert len(hours) >= 3  # crosses midnight: several day and hour folders
    assert any(h.startswith("2024-05-07") for h in hours)


def test_out_prefix_rule():
    assert layout_prefix("") == "events/"
    assert layout_prefix("events/") == "events/"
    assert layout_prefix("raw/events") == "raw/events/"
    assert layout_prefix("raw/") == "raw/events/"


def test_a_local_folder_named_events_is_not_nested_twice(tmp_path):
    write_events(generate_events(seed=1, start=START, events=50), tmp_path / "events")
    assert {p.name for p in (tmp_path / "events").iterdir()} == {"2024"}


# ---- behaviour of the simulated shoppers --------------------------------------------------------


def test_funnel_drops_off_at_every_step(one_day):
    humans = [e for e in one_day if not is_bot(e)]
    reached = {
        step: {e["session_id"] for e in humans if e["event_name"] == step}
        for step in ("page_view", "product_view", "add_to_cart", "checkout_start", "purchase")
    }
    sessions = {e["session_id"] for e in humans}
    assert reached["page_view"] == sessions
    counts = [len(reached[s]) for s in reached]
    assert counts == sorted(counts, reverse=True) and len(set(counts)) == len(counts), counts
    assert counts[-1] > 0
    conversion = counts[-1] / counts[0]
    assert 0.01 < conversion < 0.08, conversion
    # every purchase session went through the steps before it, in order
    by_session = sessions_of(humans)
    for session_id in reached["purchase"]:
        names = [e["event_name"] for e in by_session[session_id]]
        first = [names.index(step) for step in ("page_view", "product_view", "add_to_cart", "checkout_start")]
        assert first == sorted(first) and first[-1] < names.index("purchase")


def test_signing_in_mid_session_keeps_the_anonymous_id_and_adds_the_user_id(one_day):
    sessions = sessions_of(one_day)
    checked = 0
    for events in sessions.values():
        names = [e["event_name"] for e in events]
        for marker in ("sign_in", "sign_up"):
            if marker not in names or events[0]["user_id"] is not None:
                continue
            at = names.index(marker)
            user_id = events[at]["user_id"]
            assert user_id
            assert all(e["user_id"] is None for e in events[:at])
            assert all(e["user_id"] == user_id for e in events[at:])
            assert len({e["anonymous_id"] for e in events}) == 1
            checked += 1
    assert checked > 20
    # and some visitors are signed in from the first event on
    assert any(evs[0]["user_id"] for evs in sessions.values())
    # registered users come back on two devices: one user id, several anonymous ids
    anonymous_ids_by_user = defaultdict(set)
    for event in one_day:
        if event["user_id"]:
            anonymous_ids_by_user[event["user_id"]].add(event["anonymous_id"])
    assert any(len(ids) > 1 for ids in anonymous_ids_by_user.values())


def test_purchase_revenue_is_the_sum_of_its_items(one_day):
    purchases = [e for e in one_day if e["event_name"] == "purchase"]
    assert len(purchases) > 20
    catalogue = {p.id: p for p in load_catalogue()}
    order_ids = set()
    for event in purchases:
        order = event["order"]
        expected = sum(Decimal(str(i["price"])) * i["quantity"] for i in order["items"])
        assert Decimal(str(order["revenue"])) == expected.quantize(Decimal("0.01"))
        assert order["items"] and all(i["quantity"] >= 1 for i in order["items"])
        assert all(i["price"] == catalogue[i["product_id"]].price for i in order["items"])
        assert order["currency"] == "USD"
        order_ids.add(order["order_id"])
    assert len(order_ids) == len(purchases)


def test_cart_value_tracks_the_cart_lines(one_day):
    lines: dict[str, dict[str, tuple[float, int]]] = defaultdict(dict)
    cart_events = [
        e for e in one_day if e["event_name"] in ("add_to_cart", "remove_from_cart", "update_cart_quantity")
    ]
    cart_events.sort(key=lambda e: (e["session_id"], e["event_timestamp"]))
    names = Counter(e["event_name"] for e in cart_events)
    assert min(names.values()) > 10
    for event in cart_events:
        cart = lines[event["cart"]["cart_id"]]
        product = event["product"]
        if event["event_name"] == "add_to_cart":
            old = cart.get(product["id"], (0, 0))[1]
            cart[product["id"]] = (product["price"], old + event["quantity"])
        elif event["event_name"] == "update_cart_quantity":
            assert product["id"] in cart and event["quantity"] >= 1
            cart[product["id"]] = (product["price"], event["quantity"])
        else:
            assert cart.pop(product["id"])[1] == event["quantity"]
        value = sum(Decimal(str(p)) * q for p, q in cart.values())
        assert Decimal(str(event["cart"]["value"])) == value


def test_devices_traffic_sources_and_bots(one_day):
    humans = [e for e in one_day if not is_bot(e)]
    bots = [e for e in one_day if is_bot(e)]
    assert {e["device"]["type"] for e in humans} >= {"desktop", "mobile", "tablet"}
    media = Counter(e["traffic"]["medium"] for e in humans)
    assert {"(none)", "organic", "cpc", "email", "social", "paid_social", "referral", "affiliate"} == set(
        media
    )
    direct = [e for e in humans if e["traffic"]["medium"] == "(none)"]
    assert direct and all(e["traffic"]["source"] == "(direct)" for e in direct)
    tagged = [e for e in humans if e["traffic"]["campaign"]]
    assert tagged and all(e["traffic"]["source"] and e["traffic"]["medium"] for e in tagged)
    landing_with_utm = [e for e in tagged if "utm_campaign=" in (e["page"]["url"] or "")]
    assert landing_with_utm
    bot_sessions = {e["session_id"] for e in bots}
    share = len(bot_sessions) / len({e["session_id"] for e in one_day})
    assert 0.005 < share < 0.05, share
    assert all(e["event_name"] in ("page_view", "product_view", "category_view") for e in bots)


def test_no_bots_when_bot_share_is_zero():
    events = list(generate_events(seed=2, start=START, events=5000, bot_share=0))
    assert not any(is_bot(e) for e in events)


def test_hourly_weekly_and_campaign_seasonality():
    stats: dict = {}
    events = generate_events(seed=4, start=START, days=14, sessions_per_day=600, bot_share=0, stats=stats)
    by_hour: Counter[int] = Counter()
    by_day: Counter[str] = Counter()
    campaign_sessions: Counter[str] = Counter()
    for event in events:
        if (
            event["event_name"] != "page_view"
            or event["page"]["referrer"]
            and "shop.example.com" in (event["page"]["referrer"] or "")
        ):
            continue
        # landing page views: one per session
        by_hour[int(event["event_timestamp"][11:13])] += 1
        by_day[event["event_timestamp"][:10]] += 1
        if (event["traffic"]["campaign"] or "").startswith("flash_sale_"):
            campaign_sessions[event["event_timestamp"][:10]] += 1
    evening = sum(by_hour[h] for h in (19, 20, 21))
    night = sum(by_hour[h] for h in (2, 3, 4))
    assert evening > 4 * night
    # the campaign day (start + 4 days) is the busiest and carries the flash sale
    assert max(by_day, key=by_day.get) == "2024-05-10"
    assert by_day["2024-05-10"] > 1.6 * by_day["2024-05-09"]
    assert campaign_sessions and max(campaign_sessions, key=campaign_sessions.get) == "2024-05-10"
    weekend = (by_day["2024-05-11"] + by_day["2024-05-12"]) / 2
    weekdays = sum(by_day[f"2024-05-{d:02d}"] for d in (6, 7, 8, 13, 14, 15)) / 6
    assert weekend > weekdays


def test_popularity_is_skewed_and_some_products_are_rare(one_day):
    views = Counter(
        e["product"]["id"] for e in one_day if e["event_name"] == "product_view" and not is_bot(e)
    )
    catalogue = load_catalogue()
    ranked = [views[p.id] for p in catalogue]
    top = sum(sorted(ranked, reverse=True)[: len(ranked) // 10])
    assert top > 0.35 * sum(ranked)
    assert min(ranked) < 0.02 * max(ranked)


def test_catalogue_is_real_and_broad():
    catalogue = load_catalogue()
    assert 200 <= len(catalogue) <= 400
    assert len({p.id for p in catalogue}) == len(catalogue)
    assert all(p.name and p.category and p.brand and p.price > 0 for p in catalogue)
    assert len({p.category.split("/")[0] for p in catalogue}) >= 8
    assert len({p.brand for p in catalogue}) >= 50
    assert all(re.fullmatch(r"[a-z_]+(/[a-z_]+)+", p.category) for p in catalogue)


# ---- dirty data -------------------------------------------------------------------------------


def test_dirty_options_inject_duplicates_invalid_and_late_events():
    stats: dict = {}
    # a --days run ends with every held-back (late, resent) event flushed
    events = list(
        generate_events(
            seed=6, start="2024-05-06T12:00:00Z", days=0.5, sessions_per_day=2000,
            duplicate_share=0.03, invalid_share=0.02, late_share=0.02, stats=stats,
        )
    )  # fmt: skip
    n = len(events)
    assert n > 5000
    validator = jsonschema.Draft202012Validator(SCHEMA)
    ids = Counter(e.get("event_id") for e in events if "event_id" in e)
    duplicated = [i for i, count in ids.items() if count > 1]
    assert 0.02 * n < len(duplicated) < 0.04 * n
    invalid = [e for e in events if not validator.is_valid(e) or not _sane_timestamp(e)]
    assert 0.012 * n < len(invalid) < 0.03 * n
    late = [e for e in events if _delay(e) >= 3600]
    assert 0.012 * n < len(late) < 0.03 * n
    assert all(e["received_at"][:13] > e["event_timestamp"][:13] for e in late)
    assert stats["duplicates"] and stats["invalid"] and stats["late"]


def _sane_timestamp(event: dict) -> bool:
    try:
        parse_ts(event["event_timestamp"])
    except ValueError:
        return False
    return True


def _delay(event: dict) -> float:
    if not _sane_timestamp(event):
        return 0
    return (parse_ts(event["received_at"]) - parse_ts(event["event_timestamp"])).total_seconds()


def test_clean_mode_has_no_dirty_events():
    events = list(generate_events(seed=6, start=START, events=10_000))
    validator = jsonschema.Draft202012Validator(SCHEMA)
    assert len({e["event_id"] for e in events}) == len(events)
    assert all(validator.is_valid(e) and 0 < _delay(e) < 60 for e in events)


# ---- S3 and the CLI ---------------------------------------------------------------------------


def test_cli_writes_gzip_files_to_the_test_s3(s3_env, s3_client):
    cmd = [sys.executable, "-m", "generator", "--events", "3000", "--start", START, "--seed", "8", "--gzip"]
    cmd += ["--files-per-hour", "2", "--out", f"s3://{s3_env['RAW_BUCKET']}/events/", "--json"]
    result = subprocess.run(cmd, env=s3_env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    keys = [
        o["Key"] for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=s3_env["RAW_BUCKET"])
        for o in page.get("Contents", [])
    ]  # fmt: skip
    assert len(keys) == summary["files"] > 1
    total = 0
    for key in keys:
        match = KEY_RE.match(key)
        assert match and key.endswith(".json.gz"), key
        body = s3_client.get_object(Bucket=s3_env["RAW_BUCKET"], Key=key)["Body"].read()
        events = lines_of(body, key)
        assert all(e["received_at"][:13] == "{}-{}-{}T{}".format(*match.groups()[:4]) for e in events)
        total += len(events)
    assert total == summary["events"] == 3000
    assert summary["sessions"] > 0 and sum(summary["by_event_name"].values()) == 3000


def test_large_hour_files_go_up_as_multipart_uploads(s3_env, s3_client):
    # ~14k events in one hour: > 8 MiB, so the object is uploaded in two parts
    events = generate_events(seed=10, start="2024-05-06T20:00:00Z", days=1 / 24, events=14_000)
    summary = write_events(events, f"s3://{s3_env['RAW_BUCKET']}/raw/", s3_client=s3_client, run_name="big")
    objects = s3_client.list_objects_v2(Bucket=s3_env["RAW_BUCKET"])["Contents"]
    assert {o["Key"].split("/")[1] for o in objects} == {"events"}
    biggest = max(objects, key=lambda o: o["Size"])
    assert biggest["Size"] > 8 * 1024 * 1024
    assert biggest["ETag"].strip('"').endswith("-2")  # the multipart ETag: md5-of-parts-2
    body = s3_client.get_object(Bucket=s3_env["RAW_BUCKET"], Key=biggest["Key"])["Body"].read()
    assert body.endswith(b"\n") and len(body) == biggest["Size"]
    assert sum(1 for _ in body.splitlines()) + sum(
        1 for o in objects if o is not biggest for _ in s3_client.get_object(
            Bucket=s3_env["RAW_BUCKET"], Key=o["Key"])["Body"].read().splitlines()
    ) == summary["events"] == 14_000  # fmt: skip


def test_cli_needs_a_size():
    result = subprocess.run(
        [sys.executable, "-m", "generator", "--out", "/tmp/never"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "--days" in result.stderr


def test_cli_prints_a_summary(tmp_path):
    cmd = [sys.executable, "-m", "generator", "--days", "0.25", "--start", START, "--out", str(tmp_path)]
    result = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for label in ("events:", "sessions:", "files:", "page_view", "events/s", "peak RSS"):
        assert label in result.stdout
    assert (tmp_path / "events" / "2024" / "05" / "06" / "00").is_dir()


# ---- memory -----------------------------------------------------------------------------------


def test_memory_stays_flat_while_streaming(tmp_path):
    # what holding events costs: measure 5,000 of them kept in a list
    tracemalloc.start()
    held = list(generate_events(seed=1, start=START, events=5000))
    per_event = tracemalloc.get_traced_memory()[0] / len(held)
    del held
    tracemalloc.stop()
    assert per_event > 500  # sanity: an event dict costs something

    tracemalloc.start()
    summary = write_events(generate_events(seed=1, start=START, events=60_000), tmp_path / "big")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert summary["events"] == 60_000
    assert peak < per_event * 60_000 / 8, (peak, per_event * 60_000)
    assert peak < 20 * 1024 * 1024


def test_peak_rss_does_not_grow_with_the_run_size(tmp_path):
    """300k events need no more memory than 30k (the process's peak RSS, from the CLI summary)."""
    peaks = {}
    for count in (30_000, 300_000):
        cmd = [sys.executable, "-m", "generator", "--events", str(count), "--start", START, "--json"]
        cmd += ["--out", str(tmp_path / str(count))]
        result = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["events"] == count
        peaks[count] = summary["peak_rss_mb"]
    # holding 300k events would take hundreds of MB; streaming stays within a few MB of the small run
    assert peaks[300_000] < peaks[30_000] + 15, peaks
