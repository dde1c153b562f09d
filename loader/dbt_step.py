"""The step after a load: ``dbt build`` through dbt's programmatic runner, with each
node's result (status, rows affected) logged."""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("loader.dbt")


@dataclass
class DbtOutcome:
    success: bool
    models_built: int = 0
    results: list[dict] = field(default_factory=list)
    error: str | None = None


def run_dbt_build(project_dir: Path, profiles_dir: Path, *, in_lambda: bool = False) -> DbtOutcome:
    """Run ``dbt build`` on the project; never raises for a dbt failure (see ``success``)."""
    from dbt.cli.main import dbtRunner

    args = ["build", "--project-dir", str(project_dir), "--profiles-dir", str(profiles_dir)]
    if in_lambda:
        # the Lambda file system is read-only except /tmp; CloudWatch wants one JSON object per line
        work = Path(tempfile.gettempdir()) / "dbt"
        os.environ.setdefault("DBT_TARGET_PATH", str(work / "target"))
        os.environ.setdefault("DBT_LOG_PATH", str(work / "logs"))
        args += ["--log-format", "json"]
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    log.info("Running dbt build", extra={"project_dir": str(project_dir)})
    try:
        res = dbtRunner().invoke(args)
    except Exception as exc:  # dbt itself crashed
        log.error("dbt build crashed: %s", exc, extra={"error": str(exc)})
        return DbtOutcome(success=False, error=f"dbt build crashed: {exc}")

    outcome = DbtOutcome(success=bool(res.success))
    results = getattr(res.result, "results", None) or []
    for r in results:
        node = r.node
        adapter_response = r.adapter_response or {}
        rows = adapter_response.get("rows_affected")
        status = str(getattr(r.status, "value", r.status))
        entry = {
            "node": node.name,
            "resource_type": str(getattr(node.resource_type, "value", node.resource_type)),
            "status": status,
            "rows_affected": rows,
            "execution_time": round(float(r.execution_time or 0.0), 3),
        }
        outcome.results.append(entry)
        if entry["resource_type"] in ("model", "seed", "snapshot") and status == "success":
            outcome.models_built += 1
        level = {
            "warn": logging.WARNING,
            "error": logging.ERROR,
            "fail": logging.ERROR,
            "runtime error": logging.ERROR,
        }.get(status, logging.INFO)
        rows_text = f"{rows} rows affected" if rows is not None and rows >= 0 else "rows affected unknown"
        log.log(
            level,
            "dbt %s %s: %s, %s (%s) in %.2fs",
            entry["resource_type"],
            node.name,
            status,
            rows_text,
            adapter_response.get("_message", r.message or ""),
            entry["execution_time"],
            extra={"dbt_" + k: v for k, v in entry.items()},
        )
    if not outcome.success:
        if res.exception is not None:
            outcome.error = f"dbt build failed: {res.exception}"
        else:
            failed = [e["node"] for e in outcome.results if e["status"] in ("error", "fail")]
            outcome.error = "dbt build failed" + (f": {', '.join(failed)}" if failed else "")
        log.error(outcome.error, extra={"models_built": outcome.models_built})
    else:
        log.info("dbt build finished: %d models built", outcome.models_built)
    return outcome
