"""Fixtures of the warehouse tests: a database holding generated shop traffic (with bots,
duplicates, invalid and late events), loaded hour by hour and built incrementally by dbt."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timedelta

import pytest

from warehouse import rawdata
from warehouse.expected import Expected

MART_KEYS = {
    "fact_events": "event_id",
    "fact_order_items": "order_item_id",
    "fact_sessions": "session_id",
    "fact_funnels": "session_id",
    "fact_session_sequences": "session_id",
    "dim_products": "product_id",
    "dim_users": "user_key",
    "agg_events_hourly": "event_hour, event_name, device_type, traffic_source",
    "agg_product_daily": "event_date, product_id, device_type, traffic_source",
    "agg_product_daily_totals": "event_date, product_id",
    "agg_funnel_daily": "session_date, device_type, traffic_source",
    "agg_time_to_purchase_daily": "session_date, device_type, traffic_source, seconds_to_purchase",
    "agg_campaign_daily": "session_date, device_type, traffic_source, traffic_campaign",
    "rejected_events": "raw_line_id",
    "agg_paths_daily": "session_date, device_type, traffic_source, path, purchase_path",
    "agg_retention_weekly": "cohort_kind, cohort_week, device_type, traffic_source, weeks_since",
    "fact_attribution": "order_id, model, traffic_source, traffic_medium, traffic_campaign",
}
# columns that say when a row was written, not what it holds
RUN_COLUMNS = {
    "dbt_updated_at",
    "attributes_changed_at",
    "last_loaded_at",
    "inserted_at",
    "facts_changed_at",
    "previous_session_id",
}


def hourly_objects(events: list[dict]) -> list[tuple[datetime, list[dict]]]:
    """Group events into one raw object per received_at hour, loaded 5 minutes after the hour."""
    by_hour: dict[str, list[dict]] = defaultdict(list)
    for event in events:
        by_hour[str(event.get("received_at"))[:13]].append(event)
    objects = []
    for hour in sorted(by_hour):
        loaded_at = datetime.fromisoformat(hour + ":00:00+00:00") + timedelta(hours=1, minutes=5)
        objects.append((loaded_at, by_hour[hour]))
    return objects


def load_objects(env: dict[str, str], objects: list[tuple[datetime, list[dict]]]) -> list[dict]:
    lines: list[dict] = []
    for loaded_at, events in objects:
        key = f"events/{loaded_at:%Y/%m/%d/%H}/part-{loaded_at:%H%M}.json"
        rawdata.insert_raw(env, events, loaded_at=loaded_at, object_key=key)
        lines.extend(events)
    return lines


def snapshot_marts(env: dict[str, str]) -> dict[str, list[tuple]]:
    """Every mart's rows (without the run-time columns), sorted by its key."""
    result = {}
    for mart, key in MART_KEYS.items():
        columns = [
            row[0]
            for row in rawdata.query(
                env,
                "select column_name from information_schema.columns"
                " where table_schema = 'analytics' and table_name = %s order by ordinal_position",
                (mart,),
            )
            if row[0] not in RUN_COLUMNS
        ]
        select = ", ".join(f"{c}::text" for c in columns)
        result[mart] = rawdata.query(env, f"select {select} from analytics.{mart} order by {key}")  # noqa: S608
    return result


@pytest.fixture(scope="session")
def generated_warehouse(make_database, dbt):
    """Generated traffic loaded in two batches of hourly objects, each followed by dbt build
    (the second one incremental). Returns (env, raw lines in load order, Expected)."""
    from generator import generate_events

    env = make_database()
    rawdata.create_raw_schema(env)
    events = [
        json.loads(json.dumps(event))
        for event in generate_events(
            seed=20260302,
            start="2026-03-02",
            days=2,
            events=5000,
            bot_share=0.05,
            duplicate_share=0.03,
            invalid_share=0.03,
            late_share=0.03,
        )
    ]
    objects = hourly_objects(events)
    split = len(objects) - 6
    lines = load_objects(env, objects[:split])
    dbt(env, "build")
    lines += load_objects(env, objects[split:])
    dbt(env, "build")
    return env, lines, Expected.from_lines(lines)
