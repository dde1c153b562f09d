"""Every model and column is described, dbt docs generate works, the marts have enforced
contracts, and the exposures name the marts the dashboards read."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import PROJECT_ROOT


def test_docs_generate_and_descriptions(generated_warehouse, dbt):
    env, *_rest = generated_warehouse
    dbt(env, "docs", "generate")
    target = PROJECT_ROOT / ".local" / "dbt-test" / env["PGDATABASE"] / "target"
    manifest = json.loads(Path(target / "manifest.json").read_text())
    catalog = json.loads(Path(target / "catalog.json").read_text())

    models = {k: v for k, v in manifest["nodes"].items() if v["resource_type"] == "model"}
    assert len(models) >= 14
    for unique_id, node in models.items():
        assert node["description"].strip(), f"{unique_id} has no description"
        built = catalog["nodes"][unique_id]["columns"]
        for column in built:
            described = node["columns"].get(column, {}).get("description", "")
            assert described.strip(), f"{unique_id}.{column} has no description"
        if node["schema"] == "analytics":
            assert node["config"]["contract"]["enforced"], unique_id

    exposure = manifest["exposures"]["exposure.clickstream_analytics.shiny_dashboards"]
    marts = {n.split(".")[-1] for n in exposure["depends_on"]["nodes"]}
    assert {"fact_events", "fact_funnels", "agg_events_hourly", "agg_product_daily"} <= marts

    unit_tests = {v["name"] for v in manifest["unit_tests"].values()}
    assert len(unit_tests) >= 6
